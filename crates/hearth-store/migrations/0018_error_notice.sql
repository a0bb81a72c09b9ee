-- When `printer.error` was queued for a printer's current error (Unix ms); NULL: none stands.
-- As `offline_notice_at`: one report per error, whichever instance sees it and across restarts;
-- cleared when the printer reports a state other than error.
ALTER TABLE printers ADD COLUMN error_notice_at BIGINT;
