-- A spool's own identity read from its RFID tag (a Bambu Lab spool's tray_uuid): a spool the
-- printer sees in a slot is found again by it, wherever it is put. One spool per tag and
-- organisation.
ALTER TABLE spools ADD COLUMN rfid TEXT;
CREATE UNIQUE INDEX spools_rfid ON spools(org_id, rfid) WHERE rfid IS NOT NULL;
