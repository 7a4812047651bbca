-- The call controller: calls (as JSON snapshots of the state machine), its
-- pending timers, the outbox of downlink messages not yet handed to the
-- broker, remembered replies (idempotency), the devices seen, and the
-- timeline of every signaling message of a call.

CREATE TABLE calls (
    id          TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    state       TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    ended_at    INTEGER
);

CREATE TABLE call_timers (
    call_id     TEXT NOT NULL,
    timer       TEXT NOT NULL,
    due_at      INTEGER NOT NULL,
    PRIMARY KEY (call_id, timer)
);

CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY,
    client_id   TEXT NOT NULL,
    topic       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE call_replies (
    client_id   TEXT NOT NULL,
    req         TEXT NOT NULL,
    result      TEXT NOT NULL,
    until       INTEGER NOT NULL,
    PRIMARY KEY (client_id, req)
);

CREATE TABLE call_devices (
    client_id   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    first_seen  INTEGER NOT NULL
);

CREATE TABLE call_events (
    seq         INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    client_id   TEXT NOT NULL,
    type        TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX call_events_call ON call_events(call_id, seq);
