-- Forwarding the audit log to a syslog collector (hearthd's [audit] syslog): how far each chain
-- has been sent, and which instance sends (a lease, so that instances sharing PostgreSQL send each
-- entry once).
CREATE TABLE audit_forwarded (
    scope TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);

CREATE TABLE audit_forward_lease (
    id INTEGER PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
