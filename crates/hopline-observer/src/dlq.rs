//! The dead-letter queue, `hopline.dlq`: what `hopline observer dlq list` shows and
//! `hopline observer dlq retry` sends again.
//!
//! A retry sends each letter's stored request once more: the same body and
//! `Idempotency-Key`, a fresh signature. The webhook's URL, headers and secret are stored as
//! the config wrote them (`${NAME}` references unexpanded) and expanded in the retrying
//! process's environment, so no secret is ever stored. A letter delivered is removed; one that
//! fails again stays, with its attempts counted and its last error updated.

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
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hopline/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    for id in ids {
        // Taken under a row lock, so two retries at once never send one letter twice.
        let mut tx = client.transaction().map_err(|e| db::error_text(&e))?;
        let row = tx
            .query_opt("SELECT event_id, request::text FROM hopline.dlq WHERE id = $1 FOR UPDATE SKIP LOCKED", &[&id])
            .map_err(|e| db::error_text(&e))?;
        let Some(row) = row else {
            report.missing.push(id);
            continue;
        };
        let event_id: String = row.get(0);
        let request: Value = serde_json::from_str(row.get::<_, &str>(1)).unwrap_or(Value::Null);
        let outcome = match StoredRequest::read(&request, lookup) {
            Err(e) => Err(format!("cannot rebuild the request: {e}")),
            Ok(stored) => {
                let attempt = runtime.block_on(action::send(
                    &http,
                    &stored.webhook,
                    &stored.body,
                    &event_id,
                    &stored.traceparent,
                ));
                match attempt {
                    Attempt::Delivered { status } => Ok(status),
                    Attempt::Retry { error, .. } | Attempt::GiveUp { error, .. } => Err(error),
                }
            }
        };
        match outcome {
            Ok(status) => {
                tx.execute("DELETE FROM hopline.dlq WHERE id = $1", &[&id]).map_err(|e| db::error_text(&e))?;
                report.delivered.push((id, format!("answered {status}")));
            }
            Err(error) => {
                tx.execute(
                    "UPDATE hopline.dlq SET attempts = attempts + 1, last_error = $2, retried_at = now() WHERE id = $1",
                    &[&id, &error],
                )
                .map_err(|e| db::error_text(&e))?;
                report.failed.push((id, error));
            }
        }
        tx.commit().map_err(|e| db::error_text(&e))?;
    }
    Ok(report)
}
