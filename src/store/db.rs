//! One small SQL interface over the two databases the store runs on:
//! SQLite (rusqlite) and PostgreSQL (postgres). Statements are written once,
//! with SQLite's numbered parameters (`?1`), and turned into PostgreSQL's
//! (`$1`) when they go there. Values cross as [`Value`]: integers (every
//! integer column is 64-bit, booleans are 0/1), text, bytes or NULL.

use std::borrow::Cow;

use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use rusqlite::types::ValueRef;

use super::StoreError;

/// A value going to or coming from a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// What can be a statement's parameter.
pub(crate) trait Param {
    fn value(&self) -> Value;
}

impl Param for i64 {
    fn value(&self) -> Value {
        Value::Int(*self)
    }
}
impl Param for u32 {
    fn value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl Param for u16 {
    fn value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl Param for bool {
    fn value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl Param for str {
    fn value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl Param for String {
    fn value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl Param for [u8] {
    fn value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
}
impl Param for Vec<u8> {
    fn value(&self) -> Value {
        Value::Bytes(self.clone())
    }
}
impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value {
        (**self).value()
    }
}
impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}

/// A statement's parameters: `args![a, b]`.
macro_rules! args {
    ($($p:expr),* $(,)?) => {
        &[$(&$p as &dyn $crate::store::db::Param),*][..]
    };
}
pub(crate) use args;

/// One row of a result.
pub(crate) struct Row(Vec<Value>);

impl Row {
    /// Column `i` as `T`.
    pub(crate) fn get<T: FromValue>(&self, i: usize) -> Result<T, StoreError> {
        let v = self.0.get(i).unwrap_or(&Value::Null);
        T::from_value(v).ok_or_else(|| StoreError::Corrupt(format!("column {i}: {v:?}")))
    }
}

/// What a column can be read as.
pub(crate) trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromValue for u32 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u32::try_from(i).ok())
    }
}
impl FromValue for u16 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u16::try_from(i).ok())
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bytes(b) => Some(b.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// A connection (or a transaction) of either database.
pub(crate) trait Sql {
    /// Runs a statement; how many rows it changed.
    fn execute(&mut self, sql: &str, args: &[&dyn Param]) -> Result<usize, StoreError>;
    /// Runs a query; its rows.
    fn rows(&mut self, sql: &str, args: &[&dyn Param]) -> Result<Vec<Row>, StoreError>;
}

impl dyn Sql + '_ {
    /// Each row through `f`.
    pub(crate) fn query_map<T>(
        &mut self,
        sql: &str,
        args: &[&dyn Param],
        f: impl FnMut(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.rows(sql, args)?.iter().map(f).collect()
    }

    /// The first row through `f`, if there is one.
    pub(crate) fn query_row<T>(
        &mut self,
        sql: &str,
        args: &[&dyn Param],
        f: impl FnOnce(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.rows(sql, args)?.first().map(f).transpose()
    }
}

fn sqlite_params(args: &[&dyn Param]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|a| match a.value() {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(i) => rusqlite::types::Value::Integer(i),
            Value::Text(s) => rusqlite::types::Value::Text(s),
            Value::Bytes(b) => rusqlite::types::Value::Blob(b),
        })
        .collect()
}

fn from_sqlite(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        // No column of the schema is REAL: read as text, so that reading it
        // as a number reports a corrupt row.
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

fn sqlite_execute(
    c: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn Param],
) -> Result<usize, StoreError> {
    let mut st = c.prepare_cached(sql)?;
    Ok(st.execute(rusqlite::params_from_iter(sqlite_params(args)))?)
}

fn sqlite_rows(
    c: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn Param],
) -> Result<Vec<Row>, StoreError> {
    let mut st = c.prepare_cached(sql)?;
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(sqlite_params(args)))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let row = (0..n)
            .map(|i| r.get_ref(i).map(from_sqlite))
            .collect::<Result<_, _>>()?;
        out.push(Row(row));
    }
    Ok(out)
}

impl Sql for rusqlite::Connection {
    fn execute(&mut self, sql: &str, args: &[&dyn Param]) -> Result<usize, StoreError> {
        sqlite_execute(self, sql, args)
    }

    fn rows(&mut self, sql: &str, args: &[&dyn Param]) -> Result<Vec<Row>, StoreError> {
        sqlite_rows(self, sql, args)
    }
}

impl Sql for rusqlite::Transaction<'_> {
    fn execute(&mut self, sql: &str, args: &[&dyn Param]) -> Result<usize, StoreError> {
        sqlite_execute(self, sql, args)
    }

    fn rows(&mut self, sql: &str, args: &[&dyn Param]) -> Result<Vec<Row>, StoreError> {
        sqlite_rows(self, sql, args)
    }
}

/// `?1` becomes `$1` (no statement of the store has a `?` in a literal).
pub(crate) fn to_postgres(sql: &str) -> Cow<'_, str> {
    if sql.contains('?') {
        Cow::Owned(sql.replace('?', "$"))
    } else {
        Cow::Borrowed(sql)
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Text(s), &Type::TEXT | &Type::VARCHAR) => s.to_sql(ty, out),
            (Value::Bytes(b), &Type::BYTEA) => b.to_sql(ty, out),
            (v, ty) => Err(format!("{v:?} cannot be sent as {ty}").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT8,
            Type::INT4,
            Type::BOOL,
            Type::TEXT,
            Type::VARCHAR,
            Type::BYTEA,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::BYTEA => Value::Bytes(Vec::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        <Value as ToSql>::accepts(ty) || <String as FromSql>::accepts(ty)
    }
}

fn pg_rows(rows: Vec<postgres::Row>) -> Result<Vec<Row>, StoreError> {
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()
                .map(Row)
                .map_err(StoreError::from)
        })
        .collect()
}

fn pg_params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl<C: postgres::GenericClient> Sql for PgSql<'_, C> {
    fn execute(&mut self, sql: &str, args: &[&dyn Param]) -> Result<usize, StoreError> {
        let values: Vec<Value> = args.iter().map(|a| a.value()).collect();
        let n = self
            .0
            .execute(to_postgres(sql).as_ref(), &pg_params(&values))?;
        Ok(n as usize)
    }

    fn rows(&mut self, sql: &str, args: &[&dyn Param]) -> Result<Vec<Row>, StoreError> {
        let values: Vec<Value> = args.iter().map(|a| a.value()).collect();
        pg_rows(
            self.0
                .query(to_postgres(sql).as_ref(), &pg_params(&values))?,
        )
    }
}

/// A PostgreSQL transaction: a write one, or a read-only snapshot
/// (`REPEATABLE READ`) for reads of several statements.
pub(crate) fn pg_transaction(
    client: &mut postgres::Client,
    snapshot: bool,
) -> Result<postgres::Transaction<'_>, StoreError> {
    if !snapshot {
        return Ok(client.transaction()?);
    }
    Ok(client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?)
}

/// A PostgreSQL client or transaction, as [`Sql`].
pub(crate) struct PgSql<'a, C>(pub &'a mut C);
