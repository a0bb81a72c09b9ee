-- An organisation's policy: 1 when its members must log in with a second factor to act in it.
ALTER TABLE orgs ADD COLUMN require_mfa BIGINT NOT NULL DEFAULT 0;
