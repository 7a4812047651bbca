//! SQLite storage: migrations, provisioning and the directory snapshot;
//! `pg`: the controller's state in PostgreSQL (`mqrtc controller --store`).
//!
//! Every call is blocking; async callers go through `spawn_blocking` and
//! never hold the connection across an `.await`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

/// Store tests that run on both databases: each `fn name(s: &Store)` named
/// here is a `#[test]` on an in-memory SQLite store, and runs again on
/// PostgreSQL, in a database of its own, in `pg::tests`.
#[cfg(test)]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test]
            fn $name() {
                super::$name(&crate::store::Store::open_in_memory().expect("SQLite"));
            })*
        }
        pub(crate) const ON_BOTH: &[(&str, fn(&crate::store::Store))] =
            &[$((stringify!($name), $name)),*];
    };
}
#[cfg(test)]
pub(crate) use on_both;

mod admins;
mod calls;
mod console;
mod credentials;
pub(crate) mod db;
mod load;
mod migrate;
mod provision;
mod secrets;
mod state;
mod webhooks;

pub mod pg;

pub use admins::{ApiKeyRow, NewApiKey, SignedIn, FIRST_ADMIN};
pub use calls::{Batch, Loaded, OutboxRow, TimelineEntry};
pub use console::{CallCounts, CallPage, CallQuery, CallRow};
pub use credentials::{DeviceRow, NewDeviceCredential, NewToken, TokenRow};
pub use provision::{
    DemoTenant, GrantRow, GroupRow, InstanceRow, NewAccessKey, TopicRow, DEMO_INSTANCE,
};
pub use secrets::{token_hash, MasterKey};
pub use state::StateStore;
pub use webhooks::{Attempt, Delivery, DueEvent, WebhookEvent};

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    /// The database was written by a newer mqrtc.
    #[error("database schema version {found} is newer than this mqrtc knows ({known}); refusing to downgrade")]
    Downgrade {
        /// Version in the file.
        found: u32,
        /// Latest version this build knows.
        known: u32,
    },
    /// PostgreSQL said no (or cannot be reached).
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// Another controller holds the lease: this one may not write.
    #[error("fenced: {0}")]
    Fenced(String),
    /// A value in the database does not parse.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A constraint of the schema was violated (unique, foreign key, check).
    #[error("constraint: {0}")]
    Constraint(String),
    /// A name that must be new is already taken, or one that must exist is not.
    #[error("{0}")]
    Conflict(String),
    /// Nothing has that name.
    #[error("{0}")]
    NotFound(String),
    /// A value given is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A file next to the database (the master key) could not be used.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The master key is readable by other users.
    #[error(transparent)]
    Insecure(#[from] crate::private::InsecureKey),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Constraint(e.to_string()),
            _ => StoreError::Sqlite(e),
        }
    }
}

/// The store: SQLite (the appliance, one file in the data dir) or
/// PostgreSQL (`mqrtc controller --store postgres://...`, shared by every
/// controller of a deployment). The same schema and code serve both.
pub struct Store {
    db: Db,
    key: MasterKey,
}

enum Db {
    Sqlite(Mutex<Connection>),
    Postgres(Mutex<postgres::Client>),
}

/// A lock a panic left poisoned still guards a usable connection (a
/// transaction in flight was rolled back).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`;
    /// `key` encrypts the secrets in it.
    pub fn open(path: &Path, key: MasterKey) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        Self::setup(conn, key)
    }

    /// Opens the database of a data dir with the master key beside it
    /// (`mqrtc.sqlite` and `master.key`, the latter created if missing).
    pub fn open_dir(data_dir: &Path) -> Result<Store, StoreError> {
        let key = MasterKey::load_or_create(&data_dir.join("master.key"))?;
        Self::open(&data_dir.join("mqrtc.sqlite"), key)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::setup(Connection::open_in_memory()?, MasterKey::random())
    }

    fn setup(mut conn: Connection, key: MasterKey) -> Result<Store, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Smaller WAL checkpoints (default 1000 pages): the controller commits
        // hundreds of small transactions a second and a 1000-page checkpoint
        // stalls the writer for ~25 ms; 250 pages keeps call-setup p99 near
        // 10 ms at 500 setups/s (docs/benchmarks.md).
        conn.pragma_update(None, "wal_autocheckpoint", 250)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate::sqlite(&mut conn, &key)?;
        Ok(Store {
            db: Db::Sqlite(Mutex::new(conn)),
            key,
        })
    }

    /// Connects to a PostgreSQL database and brings its schema up to date;
    /// `key` encrypts the secrets in it (every controller needs the same).
    pub fn open_postgres(db: &pg::Database, key: MasterKey) -> Result<Store, StoreError> {
        let mut client = db.connect()?;
        migrate::postgres(&mut client)?;
        let store = Store {
            db: Db::Postgres(Mutex::new(client)),
            key,
        };
        store.check_key()?;
        Ok(store)
    }

    /// The store of a data dir: its SQLite database, or the PostgreSQL
    /// database `postgres` when given. The master key is the data dir's
    /// `master.key` either way (created if missing).
    pub fn open_at(data_dir: &Path, postgres: Option<&pg::Database>) -> Result<Store, StoreError> {
        match postgres {
            Some(db) => {
                let key = MasterKey::load_or_create(&data_dir.join("master.key"))?;
                Self::open_postgres(db, key)
            }
            None => Self::open_dir(data_dir),
        }
    }

    /// Fails if the secrets in the database were sealed with another
    /// master key (the first process to open it leaves a sealed marker).
    fn check_key(&self) -> Result<(), StoreError> {
        const MARK: &str = "mqrtc master key check";
        let sealed = self.key.seal(MARK);
        self.tx(|db| {
            let sql =
                "INSERT INTO master_key_check (id, sealed) VALUES (1, ?1) ON CONFLICT DO NOTHING";
            db.execute(sql, db::args![sealed])?;
            let sql = "SELECT sealed FROM master_key_check WHERE id = 1";
            let stored: Option<Vec<u8>> = db.query_row(sql, db::args![], |r| r.get(0))?;
            match stored.map(|s| self.key.open(&s)) {
                Some(Ok(m)) if m == MARK => Ok(()),
                _ => Err(StoreError::Invalid(
                    "the database's secrets are sealed with another master key: \
                     copy master.key from the data dir of the first controller"
                        .into(),
                )),
            }
        })
    }

    /// The key that encrypts secrets.
    pub(crate) fn key(&self) -> &MasterKey {
        &self.key
    }

    /// A number that changes whenever another connection (the CLI, or
    /// another controller) changed provisioning.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        match &self.db {
            Db::Sqlite(c) => Ok(lock(c).pragma_query_value(None, "data_version", |r| r.get(0))?),
            Db::Postgres(_) => {
                let sql = "SELECT version FROM provisioning_changes WHERE id = 1";
                Ok(self
                    .sql(|db| db.query_row(sql, db::args![], |r| r.get(0)))?
                    .unwrap_or(0))
            }
        }
    }

    /// Runs `f` on the connection (each statement commits on its own).
    pub(crate) fn sql<T>(
        &self,
        f: impl FnOnce(&mut dyn db::Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.db {
            Db::Sqlite(c) => f(&mut *lock(c)),
            Db::Postgres(c) => f(&mut db::PgSql(&mut *lock(c))),
        }
    }

    /// Runs `f` in a write transaction, committed if it returns `Ok`. On
    /// SQLite it takes the write lock at once (`IMMEDIATE`): a read that
    /// turned into a write later could fail at once with `SQLITE_BUSY`.
    pub(crate) fn tx<T>(
        &self,
        f: impl FnOnce(&mut dyn db::Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction(false, f)
    }

    /// Runs `f` on one consistent snapshot, for reads of several
    /// statements (PostgreSQL: `REPEATABLE READ`, read only).
    pub(crate) fn snapshot<T>(
        &self,
        f: impl FnOnce(&mut dyn db::Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction(true, f)
    }

    fn transaction<T>(
        &self,
        snapshot: bool,
        f: impl FnOnce(&mut dyn db::Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.db {
            Db::Sqlite(c) => {
                let behavior = if snapshot {
                    rusqlite::TransactionBehavior::Deferred
                } else {
                    rusqlite::TransactionBehavior::Immediate
                };
                let mut conn = lock(c);
                let mut tx = conn.transaction_with_behavior(behavior)?;
                let out = f(&mut tx)?;
                tx.commit()?;
                Ok(out)
            }
            Db::Postgres(c) => {
                let mut client = lock(c);
                let mut tx = db::pg_transaction(&mut client, snapshot)?;
                let out = f(&mut db::PgSql(&mut tx))?;
                tx.commit()?;
                Ok(out)
            }
        }
    }

    /// The first column of the first row of `sql`, for tests that look
    /// under the store (on either database).
    #[cfg(test)]
    pub(crate) fn one<T: db::FromValue>(&self, sql: &str) -> T {
        let rows = self.sql(|db| db.rows(sql, db::args![])).expect(sql);
        rows.first().expect("a row").get(0).expect("a value")
    }

    /// Runs `sql` (statements without parameters), for tests.
    #[cfg(test)]
    pub(crate) fn run(&self, sql: &str) -> Result<(), StoreError> {
        self.sql(|db| db.execute(sql, db::args![]).map(|_| ()))
    }

    /// The SQLite connection, for tests that look under the store.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        match &self.db {
            Db::Sqlite(c) => lock(c),
            Db::Postgres(_) => panic!("a SQLite store was expected"),
        }
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        match &self.db {
            Db::Sqlite(c) => Ok(lock(c).pragma_query_value(None, "user_version", |r| r.get(0))?),
            Db::Postgres(c) => migrate::postgres_version(&mut lock(c)),
        }
    }

    /// Whether an instance with this id exists.
    pub fn instance_exists(&self, id: &str) -> Result<bool, StoreError> {
        let sql = "SELECT 1 FROM instances WHERE id = ?1";
        Ok(!self.sql(|db| db.rows(sql, db::args![id]))?.is_empty())
    }

    /// Writes everything SQLite holds in its WAL into the main file (on
    /// shutdown); nothing to do for PostgreSQL.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        if let Db::Sqlite(c) = &self.db {
            lock(c).execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch, for `created_at` columns.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Directory;

    #[test]
    fn migrates_an_empty_database_to_the_latest_version() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(
            s.schema_version().unwrap(),
            migrate::MIGRATIONS.len() as u32
        );
        assert_eq!(s.directory().unwrap(), Directory::default());
    }

    #[test]
    fn refuses_to_downgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        drop(Store::open(&path, MasterKey::random()).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 999).unwrap();
        drop(c);
        assert!(matches!(
            Store::open(&path, MasterKey::random()),
            Err(StoreError::Downgrade { found: 999, .. })
        ));
    }

    #[test]
    fn reopening_keeps_data_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_dir(dir.path()).unwrap();
        s.provision_demo().unwrap();
        drop(s);
        let s = Store::open_dir(dir.path()).unwrap();
        assert!(s.instance_exists(DEMO_INSTANCE).unwrap());
    }
}

#[cfg(test)]
mod migration_tests;
