-- Spools in a printer's slots (AMS trays, the external holder, a tool's holder). A spool is on a
-- printer's one holder (spools.printer_id) or in one slot of one printer, never both: the store's
-- writes keep that.
CREATE TABLE spool_slots (
    spool_id TEXT PRIMARY KEY REFERENCES spools(id) ON DELETE CASCADE,
    printer_id TEXT NOT NULL REFERENCES printers(id) ON DELETE CASCADE,
    slot TEXT NOT NULL,
    UNIQUE (printer_id, slot)
);

-- What a job used, one row per filament (`part`, in the slicer's order) rather than one per job,
-- with the slot that fed it. Still written once per job: part 0 is the key of that.
CREATE TABLE spool_usage_parts (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    part BIGINT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    spool_id TEXT REFERENCES spools(id) ON DELETE SET NULL,
    printer_id TEXT REFERENCES printers(id) ON DELETE SET NULL,
    slot TEXT,
    material TEXT,
    color TEXT,
    grams DOUBLE PRECISION NOT NULL,
    cost DOUBLE PRECISION,
    state TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (job_id, part)
);
INSERT INTO spool_usage_parts (job_id, part, org_id, spool_id, printer_id, slot, material, color,
    grams, cost, state, at)
    SELECT job_id, 0, org_id, spool_id, printer_id, NULL, material, color, grams, cost, state, at
    FROM spool_usage;
DROP TABLE spool_usage;
ALTER TABLE spool_usage_parts RENAME TO spool_usage;
CREATE INDEX spool_usage_org ON spool_usage(org_id, at);
CREATE INDEX spool_usage_spool ON spool_usage(spool_id, at);
