//! SQLite storage: migrations, provisioning and the directory snapshot.
//!
//! Every call is blocking; async callers go through `spawn_blocking` and
//! never hold the connection across an `.await`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::directory::{AccessKey, Directory, ParentTopic, TopicRole};

mod provision;

pub use provision::{DemoTenant, NewAccessKey, DEMO_INSTANCE};

/// Migrations in order; the database keeps the number of the last applied
/// one in `PRAGMA user_version`.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_init.sql")];

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer mqrtc.
    #[error("database schema version {found} is newer than this mqrtc knows ({known}); refusing to downgrade")]
    Downgrade {
        /// Version in the file.
        found: u32,
        /// Latest version this build knows.
        known: u32,
    },
    /// A value in the database does not parse.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A name that must be new is already taken, or one that must exist is not.
    #[error("{0}")]
    Conflict(String),
}

/// The appliance's SQLite database.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        Self::setup(conn)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// The connection, for one blocking unit of work.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent
        // (transactions roll back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Everything provisioned, as the broker's checks want it.
    pub fn directory(&self) -> Result<Directory, StoreError> {
        let conn = self.conn();
        let mut d = Directory::default();
        let mut st = conn.prepare("SELECT id FROM instances ORDER BY id")?;
        d.instances = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        let mut st = conn.prepare("SELECT id, instance_id FROM groups")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (g, i): (String, String) = row?;
            d.groups.insert(g, i);
        }
        let mut st = conn.prepare("SELECT name, instance_id, role FROM topics")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            let (name, instance, role): (String, String, String) = row?;
            let role = TopicRole::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("topic {name} has role {role}")))?;
            d.topics.insert(name, ParentTopic { instance, role });
        }
        let mut st = conn.prepare("SELECT id, instance_id, secret FROM access_keys")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            let (id, instance, secret): (String, String, String) = row?;
            d.access_keys.insert(id, AccessKey { instance, secret });
        }
        Ok(d)
    }

    /// Whether an instance with this id exists.
    pub fn instance_exists(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .conn()
            .query_row("SELECT 1 FROM instances WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(found.is_some())
    }

    /// Writes everything SQLite holds in its WAL into the main file (on shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as u32;
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(StoreError::Downgrade { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Seconds since the Unix epoch, for `created_at` columns.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_an_empty_database_to_the_latest_version() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as u32);
        assert_eq!(s.directory().unwrap(), Directory::default());
    }

    #[test]
    fn refuses_to_downgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 999).unwrap();
        drop(c);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::Downgrade { found: 999, .. })
        ));
    }

    #[test]
    fn reopening_keeps_data_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let s = Store::open(&path).unwrap();
        s.provision_demo().unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        assert!(s.instance_exists(DEMO_INSTANCE).unwrap());
    }
}
