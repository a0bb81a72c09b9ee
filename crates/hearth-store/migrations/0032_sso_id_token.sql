-- RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the ID token a provider issued
-- for a dashboard login, kept with the login until its session opens and with the session, so
-- that logging out sends it back to the provider as `id_token_hint` (Okta requires it; others
-- then log out without asking again). NULL: not a single sign-on login, or none kept.
ALTER TABLE sso_logins ADD COLUMN sso_id_token TEXT;
ALTER TABLE sessions ADD COLUMN sso_id_token TEXT;
