-- The fleet queue's order: queued jobs go out by priority (higher first), then oldest first.
ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
