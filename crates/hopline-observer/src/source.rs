//! The change source (`source: { kind: postgres }`): reads `hopline.change_log` in an order
//! that never skips a change that committed late.
//!
//! # Why windows of transaction ids
//!
//! A change-log row's `seq` is taken when its statement runs, not when its transaction commits:
//! a row with a lower `seq` can become visible after a higher one was read, so "everything
//! above the last `seq` read" would skip it. Instead the source reads in windows of transaction
//! ids. It asks PostgreSQL for the oldest transaction still running (`xmin` of a fresh
//! snapshot): every transaction with a lower id has ended, committed or not, so the changes
//! they wrote are final. The next window is `[end of the last window, xmin)`; its changes are
//! read in `seq` order, in batches, and no change can join a window once it has been opened.
//! Within a window, changes to one row are in commit order: a transaction that changes a row
//! waits for the one that changed it before to end, so its statement, and its `seq`, come
//! later.
//!
//! A transaction that stays open holds `xmin` back, so changes committed after it started wait
//! for it to end (latency, not loss). Only transactions that wrote something hold it: readers
//! do not.
//!
//! # Position and wake-ups
//!
//! Each change carries its [`Position`] (the window and its `seq`); the checkpoint sink saves
//! the last one once the change is done. A start resumes in the saved window after the saved
//! `seq`. A reader thread does the reading, a batch ahead of the pipeline, on its own
//! connection, which also listens on `hopline_changes`: a notification (sent at commit) makes
//! it read at once; without one it reads every `poll_interval`, so a lost notification costs
//! latency only. When the connection breaks (the server restarts), it reconnects with backoff
//! and goes on from where it was.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::Duration;

use fallible_iterator::FallibleIterator;
use hopline_model::{CorrelationId, Envelope, EnvelopeHeader, Source, SourceError, TraceContext};
use serde_json::value::RawValue;

use crate::config::{Op, TableName};
use crate::db::{self, Backoff, Database};
use crate::message::{Change, ChangeEvent, ObserverMsg, Position};

/// How long `next_batch` waits for the reader before returning an empty batch (so a stop is
/// seen promptly).
const WAIT_FOR_READER: Duration = Duration::from_millis(100);

/// What the reader is told at start.
pub struct ReaderSetup {
    pub database: Database,
    pub client: postgres::Client,
    pub tables: Vec<TableName>,
    pub start: Position,
    pub batch_size: usize,
    pub poll_interval: Duration,
    pub instance: Arc<str>,
    pub commit_timestamps: bool,
}

/// The source: batches from the reader thread, as envelopes.
pub struct ChangeSource {
    batches: Receiver<Result<Batch, String>>,
    pending: Option<Result<Batch, String>>,
    closed: Arc<AtomicBool>,
    correlation_id: CorrelationId,
    read: u64,
}

impl ChangeSource {
    /// Starts the reader thread.
    pub fn start(setup: ReaderSetup, correlation_id: CorrelationId) -> Result<ChangeSource, SourceError> {
        let (sender, batches) = std::sync::mpsc::sync_channel(2);
        let closed = Arc::new(AtomicBool::new(false));
        let reader_closed = Arc::clone(&closed);
        std::thread::Builder::new()
            .name("observer-source".into())
            .spawn(move || Reader::new(setup, reader_closed).run(&sender))
            .map_err(|e| SourceError::App {
                kind: "postgres".into(),
                message: format!("cannot start its reader: {e}"),
            })?;
        Ok(ChangeSource { batches, pending: None, closed, correlation_id, read: 0 })
    }
}

impl Drop for ChangeSource {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl Source<ObserverMsg> for ChangeSource {
    fn next_batch(&mut self, out: &mut Vec<Envelope<ObserverMsg>>, _max: usize) -> Result<bool, SourceError> {
        let batch = match self.pending.take() {
            Some(batch) => batch,
            None => match self.batches.recv_timeout(WAIT_FOR_READER) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) => return Ok(true),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(SourceError::App { kind: "postgres".into(), message: "its reader stopped".into() });
                }
            },
        };
        let changes = batch.map_err(|message| SourceError::App { kind: "postgres".into(), message })?;
        self.read += changes.len() as u64;
        for change in changes {
            let trace = change_trace(&change);
            let header = EnvelopeHeader {
                seq: change.seq as u64,
                correlation_id: self.correlation_id,
                trace,
                ..EnvelopeHeader::default()
            };
            let event = ChangeEvent { change: change.change, hits: Vec::new(), dead: Vec::new() };
            out.push(Envelope::new(header, ObserverMsg::Change(Box::new(event))));
        }
        Ok(true)
    }

    fn position(&self) -> (u64, Option<u64>) {
        (self.read, None)
    }

    fn idle(&mut self) -> bool {
        if self.pending.is_some() {
            return false;
        }
        match self.batches.try_recv() {
            Ok(batch) => {
                self.pending = Some(batch);
                false
            }
            Err(TryRecvError::Empty) => true,
            Err(TryRecvError::Disconnected) => false,
        }
    }

    fn stops_promptly(&self) -> bool {
        true
    }
}

/// A change as the reader hands it over, with the writer's trace context.
struct ReadChange {
    seq: i64,
    change: Change,
    traceparent: Option<String>,
}

/// The writer's trace context, if it set a valid one (`SET LOCAL hopline.traceparent`).
fn change_trace(change: &ReadChange) -> Option<TraceContext> {
    change.traceparent.as_deref().and_then(TraceContext::parse_traceparent)
}

type Batch = Vec<ReadChange>;

/// The reader thread's state.
struct Reader {
    setup: ReaderSetup,
    closed: Arc<AtomicBool>,
    tables: Vec<String>,
    lo: i64,
    hi: i64,
    cursor: i64,
    window_open: bool,
}

impl Reader {
    fn new(setup: ReaderSetup, closed: Arc<AtomicBool>) -> Reader {
        let tables = setup.tables.iter().map(TableName::qualified).collect();
        let start = setup.start;
        Reader { setup, closed, tables, lo: start.window_lo, hi: start.window_hi, cursor: start.seq, window_open: true }
    }

    fn run(mut self, sender: &SyncSender<Result<Batch, String>>) {
        if let Err(e) = self.setup.client.batch_execute(&format!("LISTEN {}", crate::capture::CHANNEL)) {
            let _ = sender.send(Err(format!("cannot listen for changes: {}", db::error_text(&e))));
            return;
        }
        let mut eager: Option<Duration> = None;
        while !self.closed.load(Ordering::SeqCst) {
            match self.poll() {
                Ok(batch) if !batch.is_empty() => {
                    if sender.send(Ok(batch)).is_err() {
                        return;
                    }
                }
                Ok(_) => {
                    // Nothing to read: wait for a notification, or the poll interval. Just after
                    // one, read again soon: its transaction may still have held the window back.
                    let wait = eager.map_or(self.setup.poll_interval, |d| d.min(self.setup.poll_interval));
                    eager = eager.and_then(|d| (d < Duration::from_millis(64)).then_some(d * 2));
                    match self.wait_for_notification(wait) {
                        Ok(true) => eager = Some(Duration::from_millis(1)),
                        Ok(false) => {}
                        Err(e) => self.reconnect(&e),
                    }
                }
                Err(e) if db::is_connection_error(&e) => self.reconnect(&e),
                Err(e) => {
                    let _ = sender.send(Err(format!("cannot read the change log: {}", db::error_text(&e))));
                    return;
                }
            }
        }
    }

    /// Whether a notification came within `wait` (all that came are taken).
    fn wait_for_notification(&mut self, wait: Duration) -> Result<bool, postgres::Error> {
        let mut notifications = self.setup.client.notifications();
        let mut any = false;
        {
            let mut pending = notifications.iter();
            while let Some(_n) = pending.next()? {
                any = true;
            }
        }
        if any {
            return Ok(true);
        }
        let mut waiting = notifications.timeout_iter(wait);
        if waiting.next()?.is_some() {
            return Ok(true);
        }
        Ok(false)
    }

    /// Reconnects with backoff until it works or the source is closed; says so on stderr.
    fn reconnect(&mut self, error: &postgres::Error) {
        eprintln!(
            "hopline: observer: lost the change-log connection to {} ({}); reconnecting",
            self.setup.database.shown(),
            db::error_text(error)
        );
        let mut backoff = Backoff::new();
        while !self.closed.load(Ordering::SeqCst) {
            std::thread::sleep(backoff.next_wait());
            match self.setup.database.connect() {
                Ok(mut client) => match client.batch_execute(&format!("LISTEN {}", crate::capture::CHANNEL)) {
                    Ok(()) => {
                        self.setup.client = client;
                        eprintln!("hopline: observer: reconnected to {}", self.setup.database.shown());
                        return;
                    }
                    Err(e) => eprintln!("hopline: observer: cannot listen yet: {}", db::error_text(&e)),
                },
                Err(e) => eprintln!("hopline: observer: {e}; retrying"),
            }
        }
    }

    /// The next batch of changes, or none if nothing more has committed.
    fn poll(&mut self) -> Result<Batch, postgres::Error> {
        loop {
            if self.window_open {
                let rows = self.setup.client.query(
                    ROWS_SQL[usize::from(self.setup.commit_timestamps)],
                    &[&self.lo, &self.hi, &self.cursor, &self.tables, &(self.setup.batch_size as i64)],
                )?;
                if rows.len() < self.setup.batch_size {
                    self.window_open = false;
                }
                if !rows.is_empty() {
                    let mut batch = Vec::with_capacity(rows.len());
                    for row in &rows {
                        batch.push(self.change(row)?);
                    }
                    self.cursor = batch.last().map_or(self.cursor, |c| c.seq);
                    return Ok(batch);
                }
            }
            let xmin: i64 = self.setup.client.query_one(XMIN_SQL, &[])?.get(0);
            if xmin <= self.hi {
                return Ok(Vec::new());
            }
            (self.lo, self.hi, self.cursor, self.window_open) = (self.hi, xmin, 0, true);
        }
    }

    fn change(&self, row: &postgres::Row) -> Result<ReadChange, postgres::Error> {
        let seq: i64 = row.get(0);
        let schema: String = row.get(1);
        let table: String = row.get(2);
        let op: String = row.get(3);
        let key: String = row.get(4);
        let before: Option<String> = row.get(5);
        let after: Option<String> = row.get(6);
        let traceparent: Option<String> = row.get(7);
        let committed_at: String = row.get(8);
        let raw = |text: String| RawValue::from_string(text).expect("PostgreSQL writes valid JSON");
        let value = |text: &Option<String>| text.as_deref().map(|t| serde_json::from_str(t).expect("valid JSON"));
        let before_value = value(&before);
        let after_value = value(&after);
        let change = Change {
            seq,
            position: Position { window_lo: self.lo, window_hi: self.hi, seq },
            table: Arc::new(TableName { schema, table }),
            op: Op::parse(&op).unwrap_or(Op::Update),
            key: raw(key),
            before: before.map(raw),
            after: after.map(raw),
            before_value,
            after_value,
            committed_at,
            instance: Arc::clone(&self.setup.instance),
        };
        Ok(ReadChange { seq, change, traceparent })
    }
}

const XMIN_SQL: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

/// The rows of a window after a `seq`, in `seq` order: without and with commit timestamps.
const ROWS_SQL: [&str; 2] = [
    "SELECT seq, table_schema, table_name, op, key::text, before::text, after::text, traceparent, \
     to_char(captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
     FROM hopline.change_log \
     WHERE xid >= $1 AND xid < $2 AND seq > $3 AND (table_schema || '.' || table_name) = ANY($4) \
     ORDER BY seq LIMIT $5",
    "SELECT seq, table_schema, table_name, op, key::text, before::text, after::text, traceparent, \
     to_char(coalesce(pg_xact_commit_timestamp((xid % 4294967296)::text::xid), captured_at) AT TIME ZONE 'UTC', \
     'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
     FROM hopline.change_log \
     WHERE xid >= $1 AND xid < $2 AND seq > $3 AND (table_schema || '.' || table_name) = ANY($4) \
     ORDER BY seq LIMIT $5",
];
