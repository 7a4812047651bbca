-- The web console and the admin API: admin accounts (argon2id hashes),
-- their sign-in sessions (only a SHA-256 of the cookie is kept), API keys
-- (only a SHA-256 of the key is kept), and indexes for the calls pages.

CREATE TABLE admin_users (
    name        TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL
);

CREATE TABLE admin_sessions (
    id_hash     TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL REFERENCES admin_users(name) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    last_used   INTEGER,
    revoked_at  INTEGER
);

CREATE INDEX calls_created ON calls(created_at);
CREATE INDEX calls_live ON calls(ended_at) WHERE ended_at IS NULL;

-- Who took part in which call, so "calls of user X" is an index walk rather
-- than a scan of every call's JSON. Written with each call snapshot.
CREATE TABLE call_users (
    user_id     TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, call_id)
);
CREATE INDEX call_users_recent ON call_users(user_id, created_at);
-- sqlite only: calls of older versions (a PostgreSQL database starts empty).
INSERT OR IGNORE INTO call_users (user_id, call_id, created_at)
    SELECT p.key, c.id, c.created_at FROM calls c, json_each(c.data, '$.participants') p;

-- The timeline also records what the RTC service reported (direction 'rtc'):
-- rebuild call_events with the wider CHECK (SQLite cannot alter one).
CREATE TABLE call_events_new (
    seq         INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out', 'rtc')),
    client_id   TEXT NOT NULL,
    type        TEXT NOT NULL,
    message     TEXT NOT NULL
);
INSERT INTO call_events_new SELECT seq, call_id, at, direction, client_id, type, message FROM call_events;
DROP TABLE call_events;
ALTER TABLE call_events_new RENAME TO call_events;
CREATE INDEX call_events_call ON call_events(call_id, seq);
