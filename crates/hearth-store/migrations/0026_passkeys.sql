-- Passkeys (WebAuthn): they log members in to the dashboard instead of the passphrase (the
-- authenticator checks the person with its own lock; no key to a design ever comes from them).
-- passkeys: credential_id is the authenticator's credential ID (base64url), one account's only;
-- credential is webauthn-rs's `Passkey` as JSON (public key, signature counter, backup state),
-- rewritten when a login moves its counter; name is the member's label; times are Unix ms.
CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys(user_id);
-- passkey_ceremonies: registrations and logins started and not finished, kept five minutes.
-- id_hash: SHA-256 (hex) of the ceremony id the browser holds; kind: `register` or `login`;
-- user_id: the member registering (NULL for a login, where the authenticator names the account);
-- state: webauthn-rs's ceremony state (the challenge) as JSON. Each is taken once.
CREATE TABLE passkey_ceremonies (
    id_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- The credential id of the passkey a session was opened with (its removal ends the session);
-- NULL: another way.
ALTER TABLE sessions ADD COLUMN passkey TEXT;
