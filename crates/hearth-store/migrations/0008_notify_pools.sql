-- A notification channel can be limited to printers of some pools (",a,b,"; empty: every printer),
-- so that each team hears about its own printers.
ALTER TABLE notify_channels ADD COLUMN pools TEXT NOT NULL DEFAULT '';
