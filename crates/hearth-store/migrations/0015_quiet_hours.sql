-- A channel's quiet hours (JSON: from, to, time_zone), in which only alerts go out; NULL: none.
ALTER TABLE notify_channels ADD COLUMN quiet TEXT;
