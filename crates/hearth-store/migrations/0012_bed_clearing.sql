-- Bed clearing: a printer set to wait for it takes no next job after one that printed on its bed
-- until a member says the bed is clear (there is no one at the printer to take the part off).
ALTER TABLE printers ADD COLUMN confirm_clear_bed BIGINT NOT NULL DEFAULT 0;
-- The job whose part is still on the bed (NULL: the bed is clear).
ALTER TABLE printers ADD COLUMN bed_job TEXT;
