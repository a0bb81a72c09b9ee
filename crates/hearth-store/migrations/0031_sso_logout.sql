-- Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the provider's session id (`sid`
-- of its ID token) a login went through, kept with the login until its session opens, with the
-- session, and with the API tokens made in that session, so the provider's logout token naming
-- that `sid` ends them; NULL: the provider gave none (then a logout naming the account's `sub`
-- ends all it opened for that account).
ALTER TABLE sso_logins ADD COLUMN sso_sid TEXT;
ALTER TABLE sessions ADD COLUMN sso_sid TEXT;
ALTER TABLE api_tokens ADD COLUMN sso_sid TEXT;
CREATE INDEX sessions_sso ON sessions(sso_provider, user_id);
CREATE INDEX api_tokens_sso ON api_tokens(sso_provider, user_id);
