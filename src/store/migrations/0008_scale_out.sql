-- Scale-out (`mqrtc controller --store postgres://...`).

-- Which controller may write: the one holding the advisory lock bumps the
-- epoch when it takes over; every batch checks it (fencing), so a
-- controller that lost the lock can no longer change anything.
CREATE TABLE controller_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    epoch       INTEGER NOT NULL,
    holder      TEXT NOT NULL,
    since       INTEGER NOT NULL
);
INSERT INTO controller_lease (id, epoch, holder, since) VALUES (1, 0, '', 0);

-- A number every change of provisioning bumps, so that controllers notice
-- changes made elsewhere (SQLite's `PRAGMA data_version` does this there).
-- postgres only
CREATE TABLE provisioning_changes (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     INTEGER NOT NULL
);
-- postgres only
INSERT INTO provisioning_changes (id, version) VALUES (1, 0);
-- postgres only
CREATE FUNCTION mqrtc_provisioning_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE provisioning_changes SET version = version + 1 WHERE id = 1; RETURN NULL; END $$;
-- postgres only
DO $$ DECLARE t TEXT; BEGIN FOREACH t IN ARRAY ARRAY['instances', 'access_keys', 'groups', 'grants', 'topics', 'device_credentials', 'tokens'] LOOP EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I FOR EACH STATEMENT EXECUTE FUNCTION mqrtc_provisioning_changed()', t || '_changed', t); END LOOP; END $$;

-- A value sealed with the master key, so that a process holding another
-- key is told at once, not when it first reads a secret.
CREATE TABLE master_key_check (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    sealed      BLOB NOT NULL
);
