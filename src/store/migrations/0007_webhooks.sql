-- Signed webhooks (Standard Webhooks): one endpoint per instance, a durable
-- outbox of events written with the controller's state, and every attempt.
CREATE TABLE webhooks (
    instance_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret BLOB NOT NULL,          -- `whsec_...`, sealed with the master key
    created_at INTEGER NOT NULL
);
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,           -- webhook-id: the same on every attempt
    instance_id TEXT NOT NULL,
    type TEXT NOT NULL,
    call_id TEXT,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered_at INTEGER,
    failed_at INTEGER
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_events_call ON webhook_events (call_id);
CREATE TABLE webhook_attempts (
    event_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER,                -- HTTP status; NULL when nothing answered
    error TEXT,
    ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, at);
