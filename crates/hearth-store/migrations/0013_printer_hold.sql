-- A printer held by a member (maintenance, a nozzle change, a test print by hand) takes no new job
-- until released; what it prints goes on.
ALTER TABLE printers ADD COLUMN held BIGINT NOT NULL DEFAULT 0;
