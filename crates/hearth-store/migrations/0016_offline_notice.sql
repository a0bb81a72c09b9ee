-- When `printer.offline` was queued for a printer's current absence (Unix ms); NULL: none stands.
-- Kept in the database so that one report is made per absence, whichever of several instances
-- notices it and across restarts; cleared when the printer is back.
ALTER TABLE printers ADD COLUMN offline_notice_at BIGINT;
