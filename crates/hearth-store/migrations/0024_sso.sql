-- Single sign-on through OpenID Connect providers (login only: no key ever comes from them).
-- sso_identities: an account at a provider (the `sub` its ID tokens carry) linked to a Hearth
-- account; `claimed` is the login, e-mail or name the provider gave when it was linked, shown to
-- the member beside the provider's name; times are Unix ms.
CREATE TABLE sso_identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    claimed TEXT NOT NULL,
    linked_at BIGINT NOT NULL,
    last_login_at BIGINT,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX sso_identities_user ON sso_identities(user_id);
-- sso_logins: logins sent to a provider and not finished yet, kept minutes. state_hash: SHA-256
-- (hex) of the `state` the browser carries there and back (also in a cookie bound to it); nonce
-- and pkce_verifier check what comes back; redirect_uri is repeated at the code exchange;
-- link_user_id: a logged-in member linking an identity to their account; user_id, set once the
-- provider answered, for an account that still owes Hearth's own second factor; cli_port and
-- cli_challenge: a `hearth login --sso` waiting on that loopback port, which finishes the login
-- with the verifier whose SHA-256 (base64url) is the challenge (RFC 8252, RFC 7636's S256).
CREATE TABLE sso_logins (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    link_user_id TEXT,
    user_id TEXT,
    cli_port BIGINT,
    cli_challenge TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
