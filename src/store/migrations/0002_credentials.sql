-- Auth modes: encrypted secrets, per-device credentials, tokens, and the
-- permission model (topic grants per Group ID, P2P scope).

-- Access key secrets move to an encrypted column (AES-256-GCM under the
-- master key kept outside the database); the application re-encrypts the
-- plaintext secrets of schema 1 right after this migration and clears them.
ALTER TABLE access_keys ADD COLUMN secret_enc BLOB;

-- Which P2P targets a group's devices may send to: any device of the same
-- instance (default), only devices of the same group, or none.
ALTER TABLE groups ADD COLUMN p2p_scope TEXT NOT NULL DEFAULT 'instance'
    CHECK (p2p_scope IN ('instance', 'group', 'none'));

-- Per-group topic grants. A group with no rows may use every parent topic of
-- its instance as the topic's role allows; a group with rows only those,
-- and only in the directions granted.
CREATE TABLE grants (
    group_id    TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    topic       TEXT NOT NULL REFERENCES topics(name) ON DELETE CASCADE,
    publish     INTEGER NOT NULL CHECK (publish IN (0, 1)),
    subscribe   INTEGER NOT NULL CHECK (subscribe IN (0, 1)),
    PRIMARY KEY (group_id, topic)
);

-- DeviceCredential mode: one key pair per client id.
CREATE TABLE device_credentials (
    id          TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    secret_enc  BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX device_credentials_client ON device_credentials(client_id);

-- Token mode: only a SHA-256 of each token is kept.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('R', 'W', 'RW')),
    resources   TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
