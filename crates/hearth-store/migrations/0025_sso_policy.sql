-- How a session was opened, and so the API tokens made in it: through which single sign-on
-- provider (its id); NULL: with a passphrase.
ALTER TABLE sessions ADD COLUMN sso_provider TEXT;
ALTER TABLE api_tokens ADD COLUMN sso_provider TEXT;
-- An organisation's policy: 1 when its members must have logged in through single sign-on to act
-- in it.
ALTER TABLE orgs ADD COLUMN require_sso BIGINT NOT NULL DEFAULT 0;
