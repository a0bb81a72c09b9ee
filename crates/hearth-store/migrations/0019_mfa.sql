-- A second factor for logins: a TOTP authenticator (RFC 6238) and one-time recovery codes.
-- totp_secret: the shared secret, base32; NULL: none. totp_enabled_at: when it was confirmed with a
-- first code (Unix ms); NULL with a secret: being set up, not yet asked at login. totp_last_step:
-- the last 30-second step whose code was accepted (a code is taken once). recovery_codes: a JSON
-- list of the SHA-256 (hex) of the recovery codes not yet used.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled_at BIGINT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
ALTER TABLE users ADD COLUMN recovery_codes TEXT;
