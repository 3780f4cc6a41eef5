//! The dead-letter queue, `hopline.dlq`: what `hopline observer dlq list` shows and
//! `hopline observer dlq retry` sends again.
//!
//! A retry sends each letter's stored request once more: the same body and
//! `Idempotency-Key`, a fresh signature. The webhook's URL, headers and secret are stored as
//! the config wrote them (`${NAME}` references unexpanded) and expanded in the retrying
//! process's environment, so no secret is ever stored. A letter delivered is removed; one that
//! fails again stays, with its attempts counted and its last error updated; one whose request
//! cannot be rebuilt here (a variable missing, a bad URL) is not sent and stays as it was.
//!
//! Two retries at once never send one letter twice: each letter is claimed with a session-level
//! advisory lock, not a row lock. A row lock needs a transaction open for the whole HTTP send,
//! and an open transaction with an id holds back every observer of the database (they read
//! only below the oldest running transaction). An advisory lock takes no transaction id and
//! no snapshot; the row is read, deleted or updated in statements of their own.

use serde_json::{Value, json};

use crate::action::{self, Attempt, StoredRequest};
use crate::db::{self, Database};

/// One dead letter, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    pub id: i64,
    pub consumer: String,
    pub event_id: String,
    pub table: String,
    pub key: Value,
    pub observer: String,
    pub action: String,
    pub attempts: i32,
    pub last_error: String,
    pub created_at: String,
}

impl Letter {
    /// The `--json` line: `id`, `event_id`, `table`, `key`, `action` (`observer.action`),
    /// `attempts`, `last_error`, and `observer`, `consumer`, `created_at`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "event_id": self.event_id,
            "table": self.table,
            "key": self.key,
            "action": format!("{}.{}", self.observer, self.action),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "observer": self.observer,
            "consumer": self.consumer,
            "created_at": self.created_at,
        })
    }
}

/// Every dead letter (of one consumer, if given), oldest first.
pub fn list(database: &Database, consumer: Option<&str>) -> Result<Vec<Letter>, String> {
    let mut client = database.connect()?;
    if !schema_exists(&mut client)? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT id, consumer, event_id, table_name, key::text, observer, action, attempts, last_error, \
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM hopline.dlq WHERE $1::text IS NULL OR consumer = $1 ORDER BY id",
            &[&consumer],
        )
        .map_err(|e| db::error_text(&e))?;
    Ok(rows
        .iter()
        .map(|r| Letter {
            id: r.get(0),
            consumer: r.get(1),
            event_id: r.get(2),
            table: r.get(3),
            key: serde_json::from_str(r.get::<_, &str>(4)).unwrap_or(Value::Null),
            observer: r.get(5),
            action: r.get(6),
            attempts: r.get(7),
            last_error: r.get(8),
            created_at: r.get(9),
        })
        .collect())
}

fn schema_exists(client: &mut postgres::Client) -> Result<bool, String> {
    let row = client.query_one("SELECT to_regclass('hopline.dlq') IS NOT NULL", &[]).map_err(|e| db::error_text(&e))?;
    Ok(row.get(0))
}

/// Which letters to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    All,
    Ids(Vec<i64>),
}

/// What a retry did, letter by letter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetryReport {
    pub delivered: Vec<(i64, String)>,
    pub failed: Vec<(i64, String)>,
    /// Ids asked for that are not in the queue (already delivered, or never there).
    pub missing: Vec<i64>,
    /// Letters another retry is sending at this moment; left to it.
    pub busy: Vec<i64>,
    /// Letters whose request cannot be rebuilt in this environment (a `${NAME}` not set, a bad
    /// URL), with why; not sent, and left as they were (attempts and last error unchanged), so
    /// a retry from the right environment still has the real last error.
    pub skipped: Vec<(i64, String)>,
}

/// The first key of the dead-letter queue's advisory locks ("hopl" in ASCII); the second is
/// the letter's id modulo 2^31 - 1. Two-key advisory locks do not share their key space with
/// one-key locks (such as the migration's), but do with other two-key users of this first key,
/// and ids 2^31 - 1 apart share a lock: such a letter is reported busy while the other is sent.
const LOCK_SPACE: i32 = 0x686f_706c;

fn lock_key(id: i64) -> i32 {
    i32::try_from(id.rem_euclid(i64::from(i32::MAX))).expect("below i32::MAX")
}

/// Sends the chosen letters again, one at a time, in id order.
pub fn retry(
    database: &Database,
    which: &Which,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<RetryReport, String> {
    let mut client = database.connect()?;
    let mut report = RetryReport::default();
    if !schema_exists(&mut client)? {
        if let Which::Ids(ids) = which {
            report.missing = ids.clone();
        }
        return Ok(report);
    }
    let ids: Vec<i64> = match which {
        Which::All => client
            .query("SELECT id FROM hopline.dlq ORDER BY id", &[])
            .map_err(|e| db::error_text(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        Which::Ids(ids) => ids.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let http = crate::http::Client::new(1);
    for id in ids {
        let key = lock_key(id);
        let claimed: bool = client
            .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_SPACE, &key])
            .map_err(|e| db::error_text(&e))?
            .get(0);
        if !claimed {
            if exists(&mut client, id)? {
                report.busy.push(id);
            } else {
                report.missing.push(id);
            }
            continue;
        }
        // On an error the connection is dropped, and the session's locks go with it.
        let row = client
            .query_opt("SELECT event_id, request::text FROM hopline.dlq WHERE id = $1", &[&id])
            .map_err(|e| db::error_text(&e))?;
        if let Some(row) = row {
            let event_id: String = row.get(0);
            let request: Value = serde_json::from_str(row.get::<_, &str>(1)).unwrap_or(Value::Null);
            match StoredRequest::read(&request, lookup) {
                Err(e) => report.skipped.push((id, format!("cannot rebuild the request: {e}"))),
                Ok(stored) => {
                    let attempt = runtime.block_on(action::send(
                        &http,
                        &stored.webhook,
                        &stored.body,
                        &event_id,
                        &stored.traceparent,
                    ));
                    match attempt {
                        Attempt::Delivered { status } => {
                            client
                                .execute("DELETE FROM hopline.dlq WHERE id = $1", &[&id])
                                .map_err(|e| db::error_text(&e))?;
                            report.delivered.push((id, format!("answered {status}")));
                        }
                        Attempt::Retry { error, .. } | Attempt::GiveUp { error, .. } => {
                            let error = action::clean(&error, action::ERROR_CHARS);
                            client
                                .execute(
                                    "UPDATE hopline.dlq SET attempts = attempts + 1, last_error = $2, \
                                     retried_at = now() WHERE id = $1",
                                    &[&id, &error],
                                )
                                .map_err(|e| db::error_text(&e))?;
                            report.failed.push((id, error));
                        }
                    }
                }
            }
        } else {
            // Delivered by another retry between the listing and the lock.
            report.missing.push(id);
        }
        client.execute("SELECT pg_advisory_unlock($1, $2)", &[&LOCK_SPACE, &key]).map_err(|e| db::error_text(&e))?;
    }
    Ok(report)
}

fn exists(client: &mut postgres::Client, id: i64) -> Result<bool, String> {
    let row = client
        .query_one("SELECT EXISTS (SELECT FROM hopline.dlq WHERE id = $1)", &[&id])
        .map_err(|e| db::error_text(&e))?;
    Ok(row.get(0))
}
