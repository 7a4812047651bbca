-- The controller's state, as in the SQLite migrations 0003 to 0005: calls
-- (JSON snapshots of the state machine), pending timers, the outbox of
-- downlinks not yet handed to the broker, remembered replies
-- (idempotency), devices seen, each call's timeline and its users.

CREATE TABLE calls (
    id          TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    state       TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX calls_ended ON calls(ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE call_timers (
    call_id     TEXT NOT NULL,
    timer       TEXT NOT NULL,
    due_at      BIGINT NOT NULL,
    PRIMARY KEY (call_id, timer)
);

CREATE TABLE outbox (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   TEXT NOT NULL,
    topic       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE call_replies (
    client_id   TEXT NOT NULL,
    req         TEXT NOT NULL,
    result      TEXT NOT NULL,
    until       BIGINT NOT NULL,
    PRIMARY KEY (client_id, req)
);

CREATE TABLE call_devices (
    client_id   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    first_seen  BIGINT NOT NULL
);

CREATE TABLE call_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out', 'rtc')),
    client_id   TEXT NOT NULL,
    type        TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX call_events_call ON call_events(call_id, seq);

CREATE TABLE call_users (
    user_id     TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, call_id)
);
CREATE INDEX call_users_recent ON call_users(user_id, created_at);

-- Which controller may write: the one holding the advisory lock bumps the
-- epoch when it takes over; every batch checks it (fencing), so a
-- controller that lost the lock can no longer change anything.
CREATE TABLE controller_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    epoch       BIGINT NOT NULL,
    holder      TEXT NOT NULL,
    since       BIGINT NOT NULL
);
INSERT INTO controller_lease (id, epoch, holder, since) VALUES (1, 0, '', 0);
