-- Edge agents, their printers, print jobs, the organisation's chain of signed membership links, wrapped
-- device-key bundles and the sealed file library. Everything cryptographic is opaque text here: the
-- server stores signed links, manifests and wrapped keys but cannot open or forge them.

-- One-time tokens with which an agent enrolls into an organisation (only their SHA-256 is kept).
CREATE TABLE agent_enrollment_tokens (
    token_hash TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- Ed25519 public key (base64) that signs the connection challenge.
    signing_key TEXT NOT NULL UNIQUE,
    -- age X25519 recipient jobs are sealed to.
    age_recipient TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT
);
CREATE INDEX agents_org ON agents(org_id);

CREATE TABLE printers (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- The rest of the printer's description as the agent announced it (JSON of PrinterInfo).
    info TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (agent_id, name)
);
CREATE INDEX printers_org ON printers(org_id);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    printer_id TEXT REFERENCES printers(id) ON DELETE SET NULL,
    pool TEXT,
    blob_sha256 TEXT NOT NULL,
    -- The submitter's signed job manifest, opaque to the server.
    manifest TEXT NOT NULL,
    -- Scheduling facts the submitter chose to reveal (JSON).
    facts TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    submitted_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_org ON jobs(org_id, created_at);
CREATE INDEX jobs_printer ON jobs(printer_id, state);

-- The organisation's chain: seq 0 is the genesis, then signed links (add/remove member device, add agent,
-- new epoch). Appended only; clients pin the genesis and verify every link.
CREATE TABLE org_links (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    link TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

-- A user's device keys, wrapped on the device with a key derived from the passphrase.
CREATE TABLE key_bundles (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    bundle TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The organisation's file library: a sealed print file, its sealed private metadata (name, thumbnails,
-- settings) and the uploader's signed manifest.
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    blob_sha256 TEXT NOT NULL,
    meta_sha256 TEXT,
    manifest TEXT NOT NULL,
    facts TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX files_org ON files(org_id, created_at);
