-- The material library and the spool inventory (clear metadata: material type, colour, grams), and
-- what each job that ended used. Weights are grams as DOUBLE PRECISION (REAL on SQLite).
CREATE TABLE materials (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    brand TEXT,
    material TEXT NOT NULL,
    color TEXT,
    density DOUBLE PRECISION NOT NULL,
    diameter DOUBLE PRECISION NOT NULL,
    price_per_kg DOUBLE PRECISION,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE spools (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    material_id TEXT NOT NULL REFERENCES materials(id),
    initial_grams DOUBLE PRECISION NOT NULL,
    remaining_grams DOUBLE PRECISION NOT NULL,
    empty_spool_grams DOUBLE PRECISION,
    low_grams DOUBLE PRECISION NOT NULL,
    location TEXT,
    -- The printer it is loaded on: at most one spool per printer.
    printer_id TEXT UNIQUE REFERENCES printers(id) ON DELETE SET NULL,
    archived BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX spools_org ON spools(org_id, created_at);

-- One row per job that used filament, written once (the job is the key), with the spool it was
-- taken from and the price of that much at the time.
CREATE TABLE spool_usage (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    spool_id TEXT REFERENCES spools(id) ON DELETE SET NULL,
    printer_id TEXT REFERENCES printers(id) ON DELETE SET NULL,
    material TEXT,
    color TEXT,
    grams DOUBLE PRECISION NOT NULL,
    cost DOUBLE PRECISION,
    state TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX spool_usage_org ON spool_usage(org_id, at);
CREATE INDEX spool_usage_spool ON spool_usage(spool_id, at);
