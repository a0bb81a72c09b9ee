-- Organisation epoch keys, each sealed (age) to every member device of its epoch: stored opaque.
CREATE TABLE org_epochs (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    epoch BIGINT NOT NULL,
    sealed TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, epoch)
);

-- A user's device public keys (signing + age recipient), published so admins can add them to the chain
-- after comparing fingerprints. Trust comes from the signed chain, never from this table.
CREATE TABLE device_keys (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    public TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
