-- Provisioning: instances, their access keys, Group IDs and parent topics.
CREATE TABLE instances (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE access_keys (
    id          TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    secret      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Group IDs are unique on the appliance: a client id names its group, and
-- the group names its instance.
CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL
);

-- Parent topics are unique on the appliance: instances share one broker, so
-- a parent topic belongs to exactly one of them.
CREATE TABLE topics (
    name        TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('uplink', 'downlink', 'event')),
    created_at  INTEGER NOT NULL
);
