-- Maintenance reminders: a task of a fixed kind (no free text in clear) on a printer, due every so
-- many hours of printing and/or every so many days since it was last done. Hours of printing come
-- from printer_rollups (state 'printing'): done_print_ms is the printing time already counted in the
-- hour the task was last done in, before it was done, so what it printed since is the rollups from
-- that hour on less it.
CREATE TABLE maintenance (
    printer_id TEXT NOT NULL REFERENCES printers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    every_print_hours BIGINT,
    every_days BIGINT,
    -- Hold the printer (no new job) once the task is due, until it is done.
    hold_when_due BIGINT NOT NULL DEFAULT 0,
    -- This task held the printer when it fell due: marking it done releases the printer (unless
    -- another task holds it too).
    placed_hold BIGINT NOT NULL DEFAULT 0,
    done_at BIGINT NOT NULL,
    done_print_ms BIGINT NOT NULL,
    done_by TEXT,
    -- When `maintenance.due` was sent for the current round (NULL: not yet); cleared when done.
    notified_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (printer_id, kind)
);
CREATE INDEX maintenance_org ON maintenance(org_id);
