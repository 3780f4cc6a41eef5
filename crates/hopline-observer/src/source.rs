//! The change source (`source: { kind: postgres }`): reads `hopline.change_log` in an order
//! that never skips a change that committed late, and gives each row's changes in commit order.
//!
//! # Windows of transaction ids
//!
//! A change-log row's `seq` is taken when its statement runs, not when its transaction commits:
//! a row with a lower `seq` can become visible after a higher one was read, so "everything
//! above the last `seq` read" would skip it. Instead the source reads in windows of transaction
//! ids. It asks PostgreSQL for the oldest transaction still running (`xmin` of a fresh
//! snapshot): every transaction with a lower id has ended, committed or not, so the changes
//! they wrote are final. The next window is `[end of the last window, xmin)`; its changes are
//! read in `seq` order, in batches, and no change can join a window once it has been opened.
//!
//! A transaction that stays open holds `xmin` back, so changes committed after it started wait
//! for it to end (latency, not loss). Only transactions that wrote something hold it: readers
//! do not.
//!
//! # A row's changes in commit order
//!
//! Changes to one row are numbered in commit order: a transaction that changes a row waits for
//! the one that changed it before to end, so its statement, and its `seq`, come later. Windows
//! alone would not keep that order: transaction ids are taken at a transaction's first write,
//! so a transaction with a lower id (in this window) can change a row after one with a higher
//! id (in a later window) committed a change to it. So for each batch the source also looks at
//! the committed changes beyond the window: one to a row of the batch with a lower `seq` than
//! the batch's change to that row is delivered first, ahead of its window, and noted
//! (`hopline.ahead`, with the checkpoint) so that its own window skips it.
//!
//! # Position and wake-ups
//!
//! Each change carries its [`Position`] (the window and its `seq`); the checkpoint sink saves
//! the last one once the change is done. A start resumes in the saved window after the saved
//! `seq`. While nothing changes, the source tells the sink how far it has read (an idle
//! position), so the checkpoint moves on and the change log can be pruned.
//!
//! A reader thread does the reading, a batch ahead of the pipeline, on its own connection,
//! which also listens on `hopline_changes`: a notification (sent at commit) makes it read at
//! once; without one it reads every `poll_interval`, so a lost notification costs latency only.
//! When the connection breaks (the server restarts), it reconnects with backoff and goes on
//! from where it was.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
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

/// How far the reader has read while nothing was left to deliver, shared with the sink.
#[derive(Debug, Default)]
pub struct Idle {
    /// Set by the source once every batch the reader sent has been through the pipeline.
    pub position: Mutex<Option<Position>>,
}

/// What the reader is told at start.
pub struct ReaderSetup {
    pub database: Database,
    pub client: postgres::Client,
    pub consumer: String,
    pub tables: Vec<TableName>,
    pub start: Position,
    pub batch_size: usize,
    pub poll_interval: Duration,
    pub instance: Arc<str>,
    pub commit_timestamps: bool,
}

/// The reader's idle mark: the position and how many batches it had sent when it set it.
#[derive(Debug, Default)]
struct Mark {
    position: Mutex<Option<(Position, u64)>>,
}

/// The source: batches from the reader thread, as envelopes.
pub struct ChangeSource {
    batches: Receiver<Result<Batch, String>>,
    pending: Option<Result<Batch, String>>,
    closed: Arc<AtomicBool>,
    mark: Arc<Mark>,
    sent: Arc<AtomicU64>,
    received: u64,
    idle: Arc<Idle>,
    correlation_id: CorrelationId,
    read: u64,
}

impl ChangeSource {
    /// Starts the reader thread.
    pub fn start(
        setup: ReaderSetup,
        idle: Arc<Idle>,
        correlation_id: CorrelationId,
    ) -> Result<ChangeSource, SourceError> {
        let (sender, batches) = std::sync::mpsc::sync_channel(2);
        let closed = Arc::new(AtomicBool::new(false));
        let mark = Arc::new(Mark::default());
        let sent = Arc::new(AtomicU64::new(0));
        let mut reader = Reader::new(setup, Arc::clone(&closed), Arc::clone(&mark), Arc::clone(&sent))
            .map_err(|e| SourceError::App { kind: "postgres".into(), message: e })?;
        std::thread::Builder::new().name("observer-source".into()).spawn(move || reader.run(&sender)).map_err(|e| {
            SourceError::App { kind: "postgres".into(), message: format!("cannot start its reader: {e}") }
        })?;
        Ok(ChangeSource { batches, pending: None, closed, mark, sent, received: 0, idle, correlation_id, read: 0 })
    }

    /// Nothing came: if everything the reader sent has been through the pipeline, its idle
    /// mark is where the checkpoint may go.
    fn publish_idle(&self) {
        let mark = *self.mark.position.lock().expect("mark lock");
        if let Some((position, sent)) = mark {
            if sent == self.received && self.sent.load(Ordering::SeqCst) == self.received {
                *self.idle.position.lock().expect("idle lock") = Some(position);
            }
        }
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
                Err(RecvTimeoutError::Timeout) => {
                    self.publish_idle();
                    return Ok(true);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(SourceError::App { kind: "postgres".into(), message: "its reader stopped".into() });
                }
            },
        };
        self.received += 1;
        let changes = batch.map_err(|message| SourceError::App { kind: "postgres".into(), message })?;
        self.read += changes.len() as u64;
        for read in changes {
            let trace = read.traceparent.as_deref().and_then(TraceContext::parse_traceparent);
            let header = EnvelopeHeader {
                seq: read.change.seq as u64,
                correlation_id: self.correlation_id,
                trace,
                ..EnvelopeHeader::default()
            };
            let event = ChangeEvent { change: read.change, hits: Vec::new(), dead: Vec::new() };
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
pub struct ReadChange {
    change: Change,
    traceparent: Option<String>,
}

type Batch = Vec<ReadChange>;

/// The reader thread's state.
struct Reader {
    setup: ReaderSetup,
    closed: Arc<AtomicBool>,
    mark: Arc<Mark>,
    sent: Arc<AtomicU64>,
    tables: Vec<String>,
    /// The window `[lo, hi)`, read up to `cursor` (a `seq`), its last `seq` being `last`.
    lo: i64,
    hi: i64,
    cursor: i64,
    last: i64,
    window_open: bool,
    /// Changes delivered ahead of their window (seq → xid), skipped when it comes.
    ahead: BTreeMap<i64, i64>,
    rows_sql: String,
    earlier_sql: String,
    /// The queries, prepared on the current connection (again after a reconnect).
    statements: Option<Statements>,
}

/// The reader's queries, prepared once per connection.
struct Statements {
    rows: postgres::Statement,
    earlier: postgres::Statement,
    xmin: postgres::Statement,
    bounds: postgres::Statement,
}

impl Reader {
    fn new(
        mut setup: ReaderSetup,
        closed: Arc<AtomicBool>,
        mark: Arc<Mark>,
        sent: Arc<AtomicU64>,
    ) -> Result<Reader, String> {
        let tables = setup.tables.iter().map(TableName::qualified).collect();
        let start = setup.start;
        let columns = COLUMNS[usize::from(setup.commit_timestamps)];
        let ahead = setup
            .client
            .query("SELECT seq, xid FROM hopline.ahead WHERE consumer = $1", &[&setup.consumer])
            .map_err(|e| db::error_text(&e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut reader = Reader {
            setup,
            closed,
            mark,
            sent,
            tables,
            lo: start.window_lo,
            hi: start.window_hi,
            cursor: start.seq,
            last: 0,
            window_open: false,
            ahead,
            rows_sql: format!("SELECT {columns} {ROWS_WHERE}"),
            earlier_sql: format!("SELECT {columns} {EARLIER_WHERE}"),
            statements: None,
        };
        reader.session().map_err(|e| format!("cannot prepare the change-log connection: {}", db::error_text(&e)))?;
        reader.open_window(start.seq).map_err(|e| db::error_text(&e))?;
        Ok(reader)
    }

    /// The reader's session: listening for wake-ups, and reading windows by `seq` (the primary
    /// key's order, never a sort of the whole window).
    fn session(&mut self) -> Result<(), postgres::Error> {
        let client = &mut self.setup.client;
        client.batch_execute(&format!("SET enable_sort = off; LISTEN {}", crate::capture::CHANNEL))?;
        self.statements = Some(Statements {
            rows: client.prepare(&self.rows_sql)?,
            earlier: client.prepare(&self.earlier_sql)?,
            xmin: client.prepare(XMIN_SQL)?,
            bounds: client.prepare(BOUNDS_SQL)?,
        });
        Ok(())
    }

    fn statements(&self) -> &Statements {
        self.statements.as_ref().expect("prepared when the session starts")
    }

    /// Opens the window `[lo, hi)` after `after`: finds its last `seq` and where to start.
    fn open_window(&mut self, after: i64) -> Result<(), postgres::Error> {
        let bounds = self.statements().bounds.clone();
        let row = self.setup.client.query_one(&bounds, &[&self.lo, &self.hi])?;
        let (first, last): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        match (first, last) {
            (Some(first), Some(last)) if last > after => {
                self.cursor = after.max(first - 1);
                self.last = last;
                self.window_open = true;
            }
            _ => {
                self.cursor = after;
                self.window_open = false;
            }
        }
        Ok(())
    }

    fn run(&mut self, sender: &SyncSender<Result<Batch, String>>) {
        let mut eager: Option<Duration> = None;
        while !self.closed.load(Ordering::SeqCst) {
            match self.poll() {
                Ok(batch) if !batch.is_empty() => {
                    self.sent.fetch_add(1, Ordering::SeqCst);
                    if sender.send(Ok(batch)).is_err() {
                        return;
                    }
                }
                Ok(_) => {
                    let sent = self.sent.load(Ordering::SeqCst);
                    let idle = Position { window_lo: self.hi, window_hi: self.hi, seq: 0 };
                    *self.mark.position.lock().expect("mark lock") = Some((idle, sent));
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
            while pending.next()?.is_some() {
                any = true;
            }
        }
        if any {
            return Ok(true);
        }
        let mut waiting = notifications.timeout_iter(wait);
        Ok(waiting.next()?.is_some())
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
                Ok(client) => {
                    self.setup.client = client;
                    match self.session() {
                        Ok(()) => {
                            eprintln!("hopline: observer: reconnected to {}", self.setup.database.shown());
                            return;
                        }
                        Err(e) => eprintln!("hopline: observer: cannot listen yet: {}", db::error_text(&e)),
                    }
                }
                Err(e) => eprintln!("hopline: observer: {e}; retrying"),
            }
        }
    }

    /// The next batch of changes, or none if nothing more has committed. All or nothing: when a
    /// query fails (the connection broke), the reader is left where it was, so the batch is read
    /// again after the reconnect rather than skipped.
    fn poll(&mut self) -> Result<Batch, postgres::Error> {
        let before = (self.lo, self.hi, self.cursor, self.last, self.window_open, self.ahead.clone());
        let result = self.read_next();
        if result.is_err() {
            (self.lo, self.hi, self.cursor, self.last, self.window_open, self.ahead) = before;
        }
        result
    }

    /// [`Reader::poll`]'s work. Opens at most one new window per call, so a busy database with
    /// nothing for this consumer is not read in a loop.
    fn read_next(&mut self) -> Result<Batch, postgres::Error> {
        let mut advanced = false;
        loop {
            while self.window_open {
                let statement = self.statements().rows.clone();
                let rows = self.setup.client.query(
                    &statement,
                    &[&self.lo, &self.hi, &self.cursor, &self.last, &self.tables, &(self.setup.batch_size as i64)],
                )?;
                let full = rows.len() == self.setup.batch_size;
                if !full {
                    self.window_open = false;
                }
                let mut batch = Vec::with_capacity(rows.len());
                for row in &rows {
                    let seq: i64 = row.get(0);
                    self.cursor = seq;
                    if self.ahead.remove(&seq).is_some() {
                        continue; // Delivered ahead of its window.
                    }
                    batch.push(self.change(row, Position { window_lo: self.lo, window_hi: self.hi, seq }));
                }
                if !batch.is_empty() {
                    return self.with_earlier_changes(batch);
                }
                if !full {
                    break;
                }
            }
            if advanced {
                return Ok(Vec::new());
            }
            let statement = self.statements().xmin.clone();
            let xmin: i64 = self.setup.client.query_one(&statement, &[])?.get(0);
            if xmin <= self.hi {
                return Ok(Vec::new());
            }
            (self.lo, self.hi) = (self.hi, xmin);
            // Changes delivered ahead of windows now passed will not be met again.
            let lo = self.lo;
            self.ahead.retain(|_, xid| *xid >= lo);
            self.open_window(0)?;
            advanced = true;
        }
    }

    /// Adds to `batch` the committed changes beyond the window that must come before one of
    /// its changes: same row, lower `seq` (so committed before it). They are delivered ahead
    /// of their window, at the place of the window's change before them.
    fn with_earlier_changes(&mut self, batch: Batch) -> Result<Batch, postgres::Error> {
        let mut latest: HashMap<String, i64> = HashMap::with_capacity(batch.len());
        for read in &batch {
            let row = format!("{} {}", read.change.table.qualified(), read.change.key.get());
            let seq = latest.entry(row).or_insert(read.change.seq);
            *seq = (*seq).max(read.change.seq);
        }
        let max_seq = batch.iter().map(|r| r.change.seq).max().unwrap_or(0);
        let rows: Vec<String> = latest.keys().cloned().collect();
        let statement = self.statements().earlier.clone();
        let found = self.setup.client.query(&statement, &[&self.hi, &max_seq, &rows])?;
        if found.is_empty() {
            return Ok(batch);
        }
        let mut early = Vec::new();
        for row in &found {
            let seq: i64 = row.get(0);
            let xid: i64 = row.get(9);
            let key = format!("{}.{} {}", row.get::<_, &str>(1), row.get::<_, &str>(2), row.get::<_, &str>(4));
            if self.ahead.contains_key(&seq) || latest.get(&key).is_none_or(|&later| later < seq) {
                continue;
            }
            self.ahead.insert(seq, xid);
            let mut read = self.change(row, Position::default());
            read.change.ahead = Some(xid);
            early.push(read);
        }
        if early.is_empty() {
            return Ok(batch);
        }
        // In `seq` order; a change delivered ahead saves the position of the window's change
        // before it (or where the window was read up to), never a later one.
        let first_seq = batch.first().map_or(0, |r| r.change.position.seq);
        let mut all: Vec<ReadChange> = batch.into_iter().chain(early).collect();
        all.sort_by_key(|r| r.change.seq);
        let mut before = Position { window_lo: self.lo, window_hi: self.hi, seq: first_seq - 1 };
        for read in &mut all {
            if read.change.ahead.is_some() {
                read.change.position = before;
            } else {
                before = read.change.position;
            }
        }
        Ok(all)
    }

    fn change(&self, row: &postgres::Row, position: Position) -> ReadChange {
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
        let change = Change {
            seq,
            position,
            table: Arc::new(TableName { schema, table }),
            op: Op::parse(&op).unwrap_or(Op::Update),
            key: raw(key),
            before: before.map(raw),
            after: after.map(raw),
            committed_at,
            instance: Arc::clone(&self.setup.instance),
            ahead: None,
        };
        ReadChange { change, traceparent }
    }
}

const XMIN_SQL: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

/// A window's first and last `seq` (`seq + 0`: from the xid index, not by walking the primary
/// key from its start).
const BOUNDS_SQL: &str = "SELECT min(seq + 0), max(seq + 0) FROM hopline.change_log WHERE xid >= $1 AND xid < $2";

/// The columns read for each change: without and with commit timestamps.
const COLUMNS: [&str; 2] = [
    "seq, table_schema, table_name, op, key::text, before::text, after::text, traceparent, \
     to_char(captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), xid",
    "seq, table_schema, table_name, op, key::text, before::text, after::text, traceparent, \
     to_char(coalesce(pg_xact_commit_timestamp((xid % 4294967296)::text::xid), captured_at) AT TIME ZONE 'UTC', \
     'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), xid",
];

/// The rows of a window after a `seq`, in `seq` order (the primary key, bounded by the window's
/// last `seq`).
const ROWS_WHERE: &str = "FROM hopline.change_log \
     WHERE seq > $3 AND seq <= $4 AND xid >= $1 AND xid < $2 AND (table_schema || '.' || table_name) = ANY($5) \
     ORDER BY seq LIMIT $6";

/// Committed changes beyond the window (`xid >= $1`) numbered below `$2`, of the rows `$3`
/// (`schema.table key`).
/// (Through the xid index: no `ORDER BY`, and `seq + 0`, or the primary key would be walked from
/// its start; the few rows found are sorted here.)
const EARLIER_WHERE: &str = "FROM hopline.change_log \
     WHERE xid >= $1 AND seq + 0 < $2 AND (table_schema || '.' || table_name || ' ' || key::text) = ANY($3)";
