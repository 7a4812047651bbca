//! PostgreSQL: the batch helper, the master key check, and every store
//! test of the modules run again on PostgreSQL.

use super::testing::Postgres;
use crate::store::{MasterKey, Store};

#[test]
fn the_last_change_per_row_wins_in_first_seen_order() {
    let v = super::last_per_key([("a", 1), ("b", 2), ("a", 3)].into_iter());
    assert_eq!(v, [("a", 3), ("b", 2)]);
}

/// The store's tests of every module, each on a fresh PostgreSQL
/// database (they run on SQLite as `#[test]`s of their modules).
#[test]
fn every_store_test_on_postgres() {
    let pg = Postgres::start();
    let modules = [
        crate::store::provision::tests::ON_BOTH,
        crate::store::credentials::tests::ON_BOTH,
        crate::store::admins::tests::ON_BOTH,
        crate::store::console::tests::ON_BOTH,
        crate::store::webhooks::tests::ON_BOTH,
        crate::store::calls::retention_tests::ON_BOTH,
    ];
    let url = pg.database("keys");
    let db = super::Database::new(&url);
    let key = MasterKey::random();
    drop(Store::open_postgres(&db, key.clone()).expect("first open"));
    assert!(Store::open_postgres(&db, key).is_ok(), "the same key again");
    let other = Store::open_postgres(&db, MasterKey::random());
    assert!(
        matches!(other, Err(crate::store::StoreError::Invalid(_))),
        "another key"
    );

    let cases: Vec<_> = modules.iter().flat_map(|m| m.iter()).collect();
    assert!(cases.len() >= 12, "{} cases", cases.len());
    for (i, (name, case)) in cases.iter().enumerate() {
        let url = pg.database(&format!("case_{i}"));
        let store = Store::open_postgres(&super::Database::new(&url), MasterKey::random())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("on PostgreSQL: {name}");
        case(&store);
    }
}
