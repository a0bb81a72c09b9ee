-- Jobs an admin approves before they print. orgs.require_approval: 1 when jobs submitted by members
-- below admin wait for an admin's approval. jobs.approval: NULL (none needed), 'pending', 'approved'
-- or 'rejected'; approval_by / approval_at: the admin who decided and when (Unix ms).
ALTER TABLE orgs ADD COLUMN require_approval BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN approval TEXT;
ALTER TABLE jobs ADD COLUMN approval_by TEXT;
ALTER TABLE jobs ADD COLUMN approval_at BIGINT;
