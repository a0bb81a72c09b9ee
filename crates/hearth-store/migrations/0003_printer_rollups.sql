-- Printer history as hourly rollups: milliseconds spent in each state per printer and hour. Telemetry
-- itself is never written per message; the server accumulates in memory and flushes these sums.
CREATE TABLE printer_rollups (
    printer_id TEXT NOT NULL REFERENCES printers(id) ON DELETE CASCADE,
    bucket BIGINT NOT NULL,
    state TEXT NOT NULL,
    ms BIGINT NOT NULL,
    PRIMARY KEY (printer_id, bucket, state)
);
