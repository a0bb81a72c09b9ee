-- Notification channels of an organisation and the notifications on their way to them. A delivery
-- row is written in the same transaction as the change it reports (a job's new state), so a
-- notification is not lost to a crash; the sender claims due rows with a lease, so several
-- hearthd instances sharing the database do not send one twice at once.
CREATE TABLE notify_channels (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- webhook, slack, discord or ntfy
    kind TEXT NOT NULL,
    -- The destination; for Slack, Discord and ntfy the URL itself is the credential.
    url TEXT NOT NULL,
    -- Webhook: the Standard Webhooks signing secret (whsec_...); ntfy: the access token, or ''.
    secret TEXT NOT NULL,
    -- The events followed, comma-separated with a comma at each end (",job.failed,printer.error,"),
    -- so that one LIKE finds a channel's interest on every backend.
    events TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE notify_deliveries (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES notify_channels(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    -- The notification (JSON of hearth_proto::notify::Notification), rendered per channel kind at send.
    payload TEXT NOT NULL,
    -- pending, delivered or failed
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    -- A sender holding the row until this time; others leave it alone.
    lease_until BIGINT NOT NULL,
    last_attempt_at BIGINT,
    response_status BIGINT,
    error TEXT
);
CREATE INDEX notify_deliveries_due ON notify_deliveries(state, next_attempt_at);
CREATE INDEX notify_deliveries_channel ON notify_deliveries(channel_id, created_at);
