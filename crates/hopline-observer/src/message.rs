//! What flows through the observer's pipeline: one change of one row, as the source read it,
//! then with the observers it matched, then with what its actions left undone.
//!
//! Kinds: the source emits `change`; `match` turns each into `matched` (with its hits, none
//! for a change no observer wants, so that every change reaches the checkpoint); `act` turns
//! each into `acted` (with the dead letters of the actions that gave up); the checkpoint sink
//! consumes `acted`.

use std::sync::Arc;

use hopline_model::Message;
use serde_json::value::RawValue;

use crate::action::DeadLetter;
use crate::config::{Observer, Op, TableName};

/// Where a change sits in the change log, as the checkpoint saves it: every change of a
/// transaction whose id is below `window_lo` is done, and of those in the window
/// `window_lo ..= window_hi - 1`, every one up to `seq` (see [`crate::source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub window_lo: i64,
    pub window_hi: i64,
    pub seq: i64,
}

/// One captured change of one row.
#[derive(Debug)]
pub struct Change {
    /// Its number in the change log (unique in the database, not in commit order).
    pub seq: i64,
    pub position: Position,
    pub table: Arc<TableName>,
    pub op: Op,
    /// The primary key, as a JSON object of its columns.
    pub key: Box<RawValue>,
    /// The row before (UPDATE, DELETE) and after (INSERT, UPDATE), as PostgreSQL wrote them
    /// (numbers keep their digits: `99.50` stays `99.50` in webhooks). Conditions read the
    /// columns they need from them ([`crate::image`]).
    pub before: Option<Box<RawValue>>,
    pub after: Option<Box<RawValue>>,
    /// RFC 3339, UTC: the commit time when PostgreSQL tracks commit timestamps, else when the
    /// row was written (inside its transaction).
    pub committed_at: String,
    /// The database's hopline instance id: event ids are unique across databases and
    /// re-created schemas.
    pub instance: Arc<str>,
    /// Delivered ahead of its window (the transaction id it was written by), to keep its row's
    /// changes in commit order; the checkpoint notes it so that its window skips it.
    pub ahead: Option<i64>,
}

impl Change {
    /// The id of this change as action `action` of observer `observer` delivers it: the same
    /// on every attempt, retry and restart, and different for each action (webhooks send it as
    /// `Idempotency-Key`, so a receiver of two actions' webhooks keeps both).
    pub fn event_id(&self, observer: &str, action: &str) -> String {
        format!("{}-{}-{observer}.{action}", self.instance, self.seq)
    }

    /// A key identifying the row, for keeping a row's changes in order.
    pub fn row(&self) -> (&TableName, &str) {
        (&self.table, self.key.get())
    }
}

/// A change on its way through the observer's nodes.
#[derive(Debug)]
pub struct ChangeEvent {
    pub change: Change,
    /// The observers it matched, in config order (set by `match`).
    pub hits: Vec<Arc<Observer>>,
    /// Actions that gave up (set by `act`), for the dead-letter queue.
    pub dead: Vec<DeadLetter>,
}

/// The observer's messages.
#[derive(Debug)]
pub enum ObserverMsg {
    Change(Box<ChangeEvent>),
    Matched(Box<ChangeEvent>),
    Acted(Box<ChangeEvent>),
}

impl ObserverMsg {
    pub const CHANGE: &'static str = "change";
    pub const MATCHED: &'static str = "matched";
    pub const ACTED: &'static str = "acted";

    pub fn event(&self) -> &ChangeEvent {
        match self {
            ObserverMsg::Change(e) | ObserverMsg::Matched(e) | ObserverMsg::Acted(e) => e,
        }
    }

    pub fn into_event(self) -> Box<ChangeEvent> {
        match self {
            ObserverMsg::Change(e) | ObserverMsg::Matched(e) | ObserverMsg::Acted(e) => e,
        }
    }
}

impl Message for ObserverMsg {
    fn kind(&self) -> &'static str {
        match self {
            ObserverMsg::Change(_) => Self::CHANGE,
            ObserverMsg::Matched(_) => Self::MATCHED,
            ObserverMsg::Acted(_) => Self::ACTED,
        }
    }
}
