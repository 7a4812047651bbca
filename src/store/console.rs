//! Read-only call queries for the console and the admin API: pages of calls
//! filtered by state and user, and the counts the overview shows.

use serde::{Deserialize, Serialize};

use super::db::{args, Param, Sql};
use super::{Store, StoreError};
use crate::calls::{Call, CallState, Millis};

/// Which calls to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// `live` (ringing or active), `ringing`, `active` or `ended`; all if absent.
    pub state: Option<String>,
    /// Only calls this user (Device ID) took part in.
    pub user: Option<String>,
    /// Page number, from 1.
    pub page: Option<usize>,
    /// Page size (default 50, at most 500).
    pub per_page: Option<usize>,
}

impl CallQuery {
    /// Page size, bounded.
    pub fn per_page(&self) -> usize {
        self.per_page.unwrap_or(50).clamp(1, 500)
    }

    /// Page number, from 1.
    pub fn page(&self) -> usize {
        self.page.unwrap_or(1).max(1)
    }
}

/// A call as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CallRow {
    /// Call id.
    pub call_id: String,
    /// Instance.
    pub instance: String,
    /// `ringing`, `active` or `ended`.
    pub state: String,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// `call` (1:1) or `meeting`.
    pub kind: String,
    /// `audio` or `video`.
    pub media: String,
    /// Host (Device ID).
    pub host: String,
    /// Everyone invited, by Device ID.
    pub users: Vec<String>,
    /// Unix milliseconds.
    pub created_at: Millis,
    /// Unix milliseconds.
    pub ended_at: Option<Millis>,
}

/// A page of calls, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CallPage {
    /// Page number, from 1.
    pub page: usize,
    /// Page size.
    pub per_page: usize,
    /// Whether a next page exists.
    pub more: bool,
    /// The calls.
    pub items: Vec<CallRow>,
}

/// Calls now and lately.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct CallCounts {
    /// Calls with at least two people in.
    pub active: i64,
    /// Calls nobody answered yet.
    pub ringing: i64,
    /// Calls created in the last minute.
    pub setups_last_minute: i64,
    /// Calls ever recorded.
    pub total: i64,
}

fn word<T: Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl From<Call> for CallRow {
    fn from(c: Call) -> CallRow {
        let (state, end_reason) = match c.state {
            CallState::Ringing => ("ringing".to_string(), None),
            CallState::Active => ("active".to_string(), None),
            CallState::Ended(r) => ("ended".to_string(), Some(word(r))),
        };
        CallRow {
            call_id: c.id,
            instance: c.instance,
            state,
            end_reason,
            kind: word(c.kind),
            media: word(c.media),
            host: c.host,
            users: c.participants.into_keys().collect(),
            created_at: c.created_at,
            ended_at: c.ended_at,
        }
    }
}

impl Store {
    /// One page of calls matching `q`, newest first.
    pub fn list_calls(&self, q: &CallQuery) -> Result<CallPage, StoreError> {
        let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
            None => "",
            Some(s @ ("live" | "ringing" | "active" | "ended")) => s,
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "state {other}: expected live, ringing, active or ended"
                )))
            }
        };
        let user = q.user.as_deref().unwrap_or("").trim().to_string();
        let (page, per_page) = (q.page(), q.per_page());
        // One statement per shape, each able to use its index: a user's
        // calls through call_users, live calls through the partial index,
        // the rest newest first through calls_created.
        let (limit, offset) = ((per_page + 1) as i64, ((page - 1) * per_page) as i64);
        let mut params: Vec<&dyn Param> = vec![&limit, &offset];
        let filter = match state {
            "" => "TRUE",
            "live" => "c.ended_at IS NULL",
            "ended" => "c.state = 'ended'",
            _ => {
                params.push(&state);
                "c.ended_at IS NULL AND c.state = ?3"
            }
        };
        let sql = if user.is_empty() {
            format!(
                "SELECT c.data FROM calls c WHERE {filter}
                 ORDER BY c.created_at DESC, c.id DESC LIMIT ?1 OFFSET ?2"
            )
        } else {
            params.push(&user);
            let n = params.len();
            format!(
                "SELECT c.data FROM call_users u JOIN calls c ON c.id = u.call_id
                 WHERE u.user_id = ?{n} AND {filter} ORDER BY u.created_at DESC, u.call_id DESC LIMIT ?1 OFFSET ?2"
            )
        };
        let mut items = self.sql(|db| {
            db.query_map(&sql, &params, |r| {
                let call: Call = serde_json::from_str(&r.get::<String>(0)?)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(CallRow::from(call))
            })
        })?;
        let more = items.len() > per_page;
        items.truncate(per_page);
        Ok(CallPage {
            page,
            per_page,
            more,
            items,
        })
    }

    /// How many calls ring and go on now, and how many started lately.
    pub fn call_counts(&self, now: Millis) -> Result<CallCounts, StoreError> {
        self.snapshot(|db| {
            let mut out = CallCounts::default();
            let sql = "SELECT state, count(*) FROM calls WHERE ended_at IS NULL GROUP BY state";
            for r in db.rows(sql, args![])? {
                match (r.get::<String>(0)?.as_str(), r.get(1)?) {
                    ("ringing", n) => out.ringing = n,
                    ("active", n) => out.active = n,
                    _ => {}
                }
            }
            let count =
                |db: &mut dyn Sql, sql: &str, a: &[&dyn Param]| -> Result<i64, StoreError> {
                    Ok(db.query_row(sql, a, |r| r.get(0))?.unwrap_or(0))
                };
            let recent = now - 60_000;
            let sql = "SELECT count(*) FROM calls WHERE created_at >= ?1";
            out.setups_last_minute = count(db, sql, args![recent])?;
            out.total = count(db, "SELECT count(*) FROM calls", args![])?;
            Ok(out)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::Batch;

    fn call(id: &str, at: Millis, users: &[&str], state: serde_json::Value) -> Call {
        let participants: serde_json::Map<String, serde_json::Value> = users
            .iter()
            .map(|u| {
                let p = serde_json::json!({ "state": "joined", "invited_at": at, "ring_until": null,
                    "device": format!("GID_web@@@{u}"), "joined_at": at, "audio_muted": false, "video_muted": false });
                (u.to_string(), p)
            })
            .collect();
        let ended = state["state"] == "ended";
        serde_json::from_value(serde_json::json!({
            "id": id, "instance": "demo", "kind": "call", "media": "video", "title": null,
            "channel": format!("ch{id}"), "host": users[0], "state": state,
            "participants": participants, "created_at": at,
            "ended_at": if ended { Some(at + 1) } else { None }, "max_end_at": at + 1000
        }))
        .unwrap()
    }

    pub(crate) fn calls_page_by_state_and_user_newest_first(s: &Store) {
        let ended = serde_json::json!({ "state": "ended", "reason": "hangup" });
        let batch = Batch {
            calls: vec![
                call("c1", 100, &["alice", "bob"], ended.clone()),
                call("c2", 200, &["carol", "bob"], ended),
                call(
                    "c3",
                    300,
                    &["alice", "dave"],
                    serde_json::json!({ "state": "ringing" }),
                ),
                call(
                    "c4",
                    400,
                    &["erin", "frank"],
                    serde_json::json!({ "state": "active" }),
                ),
            ],
            ..Batch::default()
        };
        s.apply_batch(&batch).unwrap();
        let ids = |q: CallQuery| -> Vec<String> {
            s.list_calls(&q)
                .unwrap()
                .items
                .into_iter()
                .map(|c| c.call_id)
                .collect()
        };
        let q = |state: &str, user: &str| CallQuery {
            state: Some(state.into()),
            user: Some(user.into()),
            ..CallQuery::default()
        };
        assert_eq!(ids(q("", "")), ["c4", "c3", "c2", "c1"]);
        assert_eq!(ids(q("live", "")), ["c4", "c3"]);
        assert_eq!(ids(q("ringing", "")), ["c3"]);
        assert_eq!(ids(q("ended", "")), ["c2", "c1"]);
        assert_eq!(ids(q("", "alice")), ["c3", "c1"]);
        assert_eq!(ids(q("ended", "bob")), ["c2", "c1"]);
        assert_eq!(ids(q("active", "alice")), Vec::<String>::new());
        assert!(ids(q("", "nobody")).is_empty());
        let page = s
            .list_calls(&CallQuery {
                per_page: Some(3),
                ..CallQuery::default()
            })
            .unwrap();
        assert!(page.more);
        assert!(s.list_calls(&q("sideways", "")).is_err());
        let counts = s.call_counts(450).unwrap();
        assert_eq!((counts.active, counts.ringing, counts.total), (1, 1, 4));
    }

    pub(crate) fn a_database_error_is_an_error_not_a_missing_call(s: &Store) {
        assert!(s.stored_call("nope").unwrap().is_none(), "absent: None");
        s.run("DROP TABLE call_users").unwrap();
        s.run("DROP TABLE calls").unwrap();
        assert!(
            matches!(
                s.stored_call("nope"),
                Err(StoreError::Sqlite(_) | StoreError::Postgres(_))
            ),
            "a broken store must not read as 404"
        );
    }

    crate::store::on_both!(
        calls_page_by_state_and_user_newest_first,
        a_database_error_is_an_error_not_a_missing_call
    );
}
