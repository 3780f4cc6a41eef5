//! Destinations: one thread and one bounded queue per place spans go (OTLP, a file, stdout,
//! the forensic trace), so a slow one never holds up another, nor the pipeline.
//!
//! A destination's queue holds at most `batch.max_queue_size` spans; a batch of records that
//! does not fit is dropped whole and counted. Its thread exports in batches of at most
//! `batch.max_export_batch_size` spans, as soon as a batch is full or the oldest waiting span
//! has waited `batch.scheduled_delay`.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime};

use hopline_model::TraceContext;
use hopline_model::config::{BatchConfig, OtlpExport, OtlpProtocol};
use hopline_model::trace::{AttrValue, Outcome, SpanKind as Kind, SpanRecord};
use hopline_trace::attributes as attr;
use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use serde::{Deserialize, Serialize};

use super::{LineSend, TraceStartError, TracerSetup};

/// Who this process is, as its spans' resource says.
#[derive(Debug, Clone)]
pub struct ProcessIdentity {
    /// `service.name`: the configured service, and `-<group>` for a worker.
    pub service_name: String,
    /// `service.instance.id`: unique to this process of this run.
    pub instance_id: String,
    pub pid: u32,
    /// `hopline.process_group`, for a worker.
    pub group: Option<String>,
}

/// The names span records refer to by index.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Node names, by their index in the pipeline's node list.
    pub nodes: Vec<String>,
    /// Process group names, by group index (empty in the memory profile).
    pub groups: Vec<String>,
}

/// What tracing did in one process, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStats {
    /// Spans recorded.
    pub spans: u64,
    pub destinations: Vec<DestinationStats>,
}

/// One destination's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationStats {
    /// `otlp URL`, `file PATH`, `stdout`, `forensic`.
    pub name: String,
    pub exported: u64,
    /// Spans that found the queue full, or were still queued when the run could wait no more.
    pub dropped: u64,
    /// Spans in exports that failed.
    pub failed: u64,
    /// The last export error, if any.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Spans offered and not yet exported, failed or dropped.
    queued: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Set when the run is over and waiting for this destination: from then on, one failed
    /// export gives up on everything still queued.
    closing: AtomicBool,
    /// Signalled when the thread has taken spans off the queue (a lossless destination's
    /// offer waits on it).
    taken: Condvar,
    taken_lock: Mutex<()>,
    /// What the tracer asks of the thread, and the signal that it asked. (Not the thread's
    /// park token: the blocking HTTP client parks and unparks the thread itself.)
    wake: Mutex<Requests>,
    woken: Condvar,
}

/// Requests to a destination thread.
#[derive(Default)]
struct Requests {
    /// Look at the queue now.
    now: bool,
    /// An offer is waiting for room: export everything held, without waiting for a full
    /// batch or the scheduled delay.
    urgent: bool,
}

impl Counters {
    /// `n` spans have left the queue. (Saturating: after a finish that gave up waiting, the
    /// queue was emptied by the count.)
    fn dequeued(&self, n: u64) {
        let _ = self.queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| Some(q.saturating_sub(n)));
        let _guard = self.taken_lock.lock().expect("queue lock");
        self.taken.notify_all();
    }

    fn wake(&self, urgent: bool) {
        let mut wake = self.wake.lock().expect("wake lock");
        wake.now = true;
        wake.urgent |= urgent;
        self.woken.notify_one();
    }

    /// Waits until woken, or for `timeout` (`None`: for as long as it takes). Returns whether
    /// the wake was urgent.
    fn sleep(&self, timeout: Option<Duration>) -> bool {
        let mut wake = self.wake.lock().expect("wake lock");
        if !wake.now {
            wake = match timeout {
                Some(timeout) => self.woken.wait_timeout(wake, timeout).expect("wake lock").0,
                None => self.woken.wait(wake).expect("wake lock"),
            };
        }
        let urgent = wake.urgent;
        *wake = Requests::default();
        urgent
    }
}

/// The most a line handed to the supervisor holds, about: control frames are at most 4 MiB.
const SEND_LINE_BYTES: usize = 1 << 20;

/// A queued piece of a batch: the records `range` of a shared slice.
type Piece = (Arc<[SpanRecord]>, std::ops::Range<usize>);

/// One destination, as the tracer sees it.
pub(super) struct Destination {
    name: String,
    queue: Option<Sender<Piece>>,
    counters: Arc<Counters>,
    max_queue: u64,
    /// Files and the forensic trace are written whole: a full queue makes the pipeline wait
    /// for the disk (or the supervisor) instead of dropping. OTLP drops what does not fit, so
    /// a collector can never slow the run down.
    lossless: bool,
    /// Whether the destination's thread is running.
    running: bool,
    /// Queued spans from which an offer wakes the thread (an export's worth).
    wake_at: u64,
    /// Closed by the thread when it returns.
    done: Receiver<()>,
    /// How long [`Destination::finish`] waits for the thread; `None` for as long as it takes.
    flush_deadline: Option<Duration>,
}

impl Destination {
    /// Queues `batch`. A lossy destination queues what fits under its bound and drops (and
    /// counts) the rest; a lossless one waits for room (a batch larger than the whole bound
    /// goes in alone, once the queue is empty).
    pub(super) fn offer(&self, batch: &Arc<[SpanRecord]>) {
        let Some(queue) = &self.queue else {
            self.counters.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            return;
        };
        let counters = &self.counters;
        let n = batch.len() as u64;
        let fits = if self.lossless {
            let mut guard = counters.taken_lock.lock().expect("queue lock");
            loop {
                let queued = counters.queued.load(Ordering::Acquire);
                if queued == 0 || queued + n <= self.max_queue {
                    break;
                }
                counters.wake(true);
                guard = counters.taken.wait(guard).expect("queue lock");
            }
            n
        } else {
            n.min(self.max_queue.saturating_sub(counters.queued.load(Ordering::Acquire)))
        };
        if fits < n {
            counters.dropped.fetch_add(n - fits, Ordering::Relaxed);
        }
        if fits > 0 {
            let before = counters.queued.fetch_add(fits, Ordering::AcqRel);
            if queue.send((Arc::clone(batch), 0..fits as usize)).is_err() {
                counters.queued.fetch_sub(fits, Ordering::AcqRel);
                counters.dropped.fetch_add(fits, Ordering::Relaxed);
            } else if before == 0 || before + fits >= self.wake_at {
                // The first spans after a quiet spell start the scheduled delay's clock; an
                // export's worth is worth a wake-up now.
                counters.wake(false);
            }
        }
    }

    pub(super) fn stats(&self) -> DestinationStats {
        let c = &self.counters;
        DestinationStats {
            name: self.name.clone(),
            exported: c.exported.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            last_error: c.last_error.lock().expect("error lock").clone(),
        }
    }

    /// Closes the queue and waits for the thread to export what it holds.
    pub(super) fn finish(mut self) -> DestinationStats {
        self.counters.closing.store(true, Ordering::Release);
        drop(self.queue.take());
        if self.running {
            self.counters.wake(true);
        }
        let waited = match self.flush_deadline {
            Some(deadline) => self.done.recv_timeout(deadline).map_err(|_| ()),
            None => self.done.recv().map_err(|_| ()),
        };
        // Disconnected (the thread returned) is the normal end; a timeout leaves the thread
        // to the process's exit and counts what it still holds as dropped.
        let _ = waited;
        if self.done.try_recv() == Err(mpsc::TryRecvError::Empty) {
            let left = self.counters.queued.swap(0, Ordering::AcqRel);
            self.counters.dropped.fetch_add(left, Ordering::Relaxed);
        }
        self.stats()
    }
}

/// A file written a whole line per `write_all` call and never buffered, so that processes
/// appending to the same file never split each other's lines.
struct LineWriter(File);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where one destination's spans go.
enum Target {
    Otlp(Box<opentelemetry_otlp::SpanExporter>),
    /// OTLP JSON lines: a file, or stdout.
    Lines(Box<dyn Write + Send>),
    /// OTLP JSON lines handed to a function: the forensic trace, or a worker's stdout lines
    /// (both to the supervisor).
    Send(LineSend),
}

/// Starts a thread for each destination the settings name.
pub(super) fn start_destinations(setup: &mut TracerSetup<'_>) -> Result<Vec<Destination>, TraceStartError> {
    let tracing = setup.tracing;
    let convert = Arc::new(Converter::new(setup));
    let mut destinations = Vec::new();
    if let Some(otlp) = &tracing.otlp {
        let mut exporter = otlp_exporter(otlp)?;
        exporter.set_resource(&convert.resource);
        destinations.push(spawn(
            format!("otlp {}", otlp.endpoint),
            Target::Otlp(Box::new(exporter)),
            &convert,
            tracing.batch,
            Some(otlp.timeout + Duration::from_secs(1)),
        ));
    }
    for file in &tracing.files {
        let path = file.path_from(setup.config_dir);
        // Every process of a run appends whole lines to the one file (O_APPEND keeps each
        // write whole); the first creates it, empty.
        let opened = if setup.append_files { Ok(()) } else { File::create(&path).map(drop) }
            .and_then(|()| std::fs::OpenOptions::new().append(true).create(true).open(&path))
            .map_err(|source| TraceStartError::File { path: path.display().to_string(), source })?;
        let writer = Box::new(LineWriter(opened));
        destinations.push(spawn(
            format!("file {}", path.display()),
            Target::Lines(writer),
            &convert,
            tracing.batch,
            None,
        ));
    }
    if tracing.stdout {
        let target = match setup.stdout_via.take() {
            Some(send) => Target::Send(send),
            None => Target::Lines(Box::new(std::io::stdout())),
        };
        destinations.push(spawn("stdout".into(), target, &convert, tracing.batch, None));
    }
    // The forensic sender is taken by value: only one destination may own it.
    if let Some(send) = setup.forensic.take() {
        destinations.push(spawn("forensic".into(), Target::Send(send), &convert, tracing.batch, None));
    }
    Ok(destinations)
}

fn spawn(
    name: String,
    target: Target,
    convert: &Arc<Converter>,
    batch: BatchConfig,
    flush_deadline: Option<Duration>,
) -> Destination {
    let lossless = !matches!(target, Target::Otlp(_));
    let (queue, receiver) = mpsc::channel();
    let (finished, done) = mpsc::channel::<()>();
    let counters = Arc::new(Counters::default());
    let thread_counters = Arc::clone(&counters);
    let convert = Arc::clone(convert);
    let spawned = std::thread::Builder::new().name(format!("trace {name}")).spawn(move || {
        run_destination(target, &receiver, &thread_counters, &convert, batch);
        drop(finished);
    });
    let running = spawned.is_ok();
    Destination {
        name,
        // A thread that could not start takes nothing: every offer is dropped and counted.
        queue: running.then_some(queue),
        running,
        wake_at: batch.max_export_batch_size as u64,
        counters,
        max_queue: batch.max_queue_size as u64,
        lossless,
        done,
        flush_deadline,
    }
}

/// The destination thread: export full batches at once, partial ones after the scheduled
/// delay, everything when the queue closes. Once the run is over (the tracer is finishing),
/// one failed export gives up on the rest (counted as dropped): waiting on a collector that
/// fails would only delay the exit.
fn run_destination(
    mut target: Target,
    receiver: &Receiver<Piece>,
    counters: &Counters,
    convert: &Converter,
    batch: BatchConfig,
) {
    let mut pending: VecDeque<Piece> = VecDeque::new();
    let mut count = 0usize;
    let mut oldest: Option<Instant> = None;
    let mut closed = false;
    let mut urgent = false;
    loop {
        // Take what the tracer has queued. A send alone does not wake this thread (the
        // pipeline thread would pay for a wake-up per batch); the tracer wakes it for the first
        // spans after a quiet spell, for an export's worth, and when it waits for room.
        while !closed {
            match receiver.try_recv() {
                Ok(piece) => {
                    count += piece.1.len();
                    pending.push_back(piece);
                    oldest.get_or_insert_with(Instant::now);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => closed = true,
            }
        }
        let due = urgent || oldest.is_some_and(|since| since.elapsed() >= batch.scheduled_delay);
        while count >= batch.max_export_batch_size || (count > 0 && (closed || due)) {
            let records = take(&mut pending, batch.max_export_batch_size);
            count -= records.len();
            let n = records.len() as u64;
            match export(&mut target, &records, convert) {
                Ok(()) => {
                    counters.exported.fetch_add(n, Ordering::Relaxed);
                }
                Err(error) => {
                    counters.failed.fetch_add(n, Ordering::Relaxed);
                    *counters.last_error.lock().expect("error lock") = Some(error);
                    if closed || counters.closing.load(Ordering::Acquire) {
                        counters.dequeued(n);
                        let left = counters.queued.swap(0, Ordering::AcqRel);
                        counters.dropped.fetch_add(left, Ordering::Relaxed);
                        return;
                    }
                }
            }
            counters.dequeued(n);
            if count == 0 {
                oldest = None;
            }
        }
        if closed && count == 0 {
            if let Target::Lines(writer) = &mut target {
                let _ = writer.flush();
            }
            if let Target::Otlp(exporter) = &mut target {
                let _ = exporter.shutdown();
            }
            return;
        }
        // Spans still in the channel (sent while this thread was exporting) are taken at once;
        // spans held wait for their scheduled delay; with nothing anywhere, sleep until woken.
        let in_channel = counters.queued.load(Ordering::Acquire) > count as u64;
        urgent = if in_channel || closed {
            false
        } else {
            let timeout = oldest.map(|since| batch.scheduled_delay.saturating_sub(since.elapsed()));
            counters.sleep(timeout)
        };
    }
}

/// Up to `max` records from the front of `pending`.
fn take(pending: &mut VecDeque<Piece>, max: usize) -> Vec<SpanRecord> {
    let mut out = Vec::with_capacity(max.min(4096));
    while out.len() < max {
        let Some((records, range)) = pending.front_mut() else { break };
        let n = (max - out.len()).min(range.len());
        out.extend_from_slice(&records[range.start..range.start + n]);
        range.start += n;
        if range.start == range.end {
            pending.pop_front();
        }
    }
    out
}

fn export(target: &mut Target, records: &[SpanRecord], convert: &Converter) -> Result<(), String> {
    match target {
        Target::Otlp(exporter) => {
            let spans = records.iter().map(|r| convert.span(r)).collect();
            block_on(exporter.export(spans)).map_err(|e| e.to_string())
        }
        Target::Lines(writer) => {
            let mut line = convert.json_line(records);
            line.push('\n');
            writer.write_all(line.as_bytes()).and_then(|()| writer.flush()).map_err(|e| e.to_string())
        }
        Target::Send(send) => {
            // Lines cross a control connection, whose frames are bounded: keep each well under.
            for line in convert.json_lines(records, SEND_LINE_BYTES) {
                if !send(line) {
                    return Err("the supervisor is gone".into());
                }
            }
            Ok(())
        }
    }
}

fn otlp_exporter(otlp: &OtlpExport) -> Result<opentelemetry_otlp::SpanExporter, TraceStartError> {
    let fail = |message: String| TraceStartError::Otlp { endpoint: otlp.endpoint.clone(), message };
    if otlp.endpoint.starts_with("https://") {
        return Err(fail("this build has no TLS; send to a collector over http:// (on this host or a sidecar)".into()));
    }
    let protocol = match otlp.protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    // Percent-encoded values were decoded when the settings were read; the exporter decodes
    // again, so a `%` is sent encoded to arrive as written.
    let headers = otlp.headers.iter().map(|(name, value)| (name.clone(), value.replace('%', "%25"))).collect();
    // A short retry: a failing collector costs each export well under a second.
    let retry = opentelemetry_otlp::RetryPolicy::recommended()
        .with_max_retries(2)
        .with_initial_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(400));
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(otlp.endpoint.clone())
        .with_protocol(protocol)
        .with_headers(headers)
        .with_timeout(otlp.timeout)
        .with_retry_policy(retry)
        .build()
        .map_err(|e| fail(e.to_string()))
}

/// Runs a future to its end on this thread. The exporter's blocking HTTP client finishes its
/// work inside the first poll; the waker covers any future that does not.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Turns records into OpenTelemetry spans, with this process's names and resource.
pub(super) struct Converter {
    names: Names,
    /// This process's group index, for receive spans' destination.
    group: Option<String>,
    run_span: Option<TraceContext>,
    scope: InstrumentationScope,
    pub(super) resource: Resource,
    /// A JSON line's opening, up to the first span: the resource and the scope.
    json_prefix: String,
}

impl Converter {
    fn new(setup: &TracerSetup<'_>) -> Converter {
        let process = &setup.process;
        let mut attributes = vec![
            KeyValue::new(attr::SERVICE_NAME, process.service_name.clone()),
            KeyValue::new(attr::SERVICE_INSTANCE_ID, process.instance_id.clone()),
            KeyValue::new(attr::PROCESS_PID, i64::from(process.pid)),
        ];
        if let Some(group) = &process.group {
            attributes.push(KeyValue::new(attr::PROCESS_GROUP, group.clone()));
        }
        let mut json_prefix = String::from("{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
        for (i, kv) in attributes.iter().enumerate() {
            json_prefix.push_str(if i == 0 { "{\"key\":" } else { ",{\"key\":" });
            push_json_string(&mut json_prefix, kv.key.as_str());
            json_prefix.push_str(",\"value\":{");
            match &kv.value {
                opentelemetry::Value::I64(n) => json_prefix.push_str(&format!("\"intValue\":\"{n}\"")),
                other => {
                    json_prefix.push_str("\"stringValue\":");
                    push_json_string(&mut json_prefix, &other.as_str());
                }
            }
            json_prefix.push_str("}}");
        }
        json_prefix.push_str("]},\"scopeSpans\":[{\"scope\":{\"name\":\"hopline-runtime\",\"version\":");
        push_json_string(&mut json_prefix, env!("CARGO_PKG_VERSION"));
        json_prefix.push_str("},\"spans\":[");
        Converter {
            json_prefix,
            names: setup.names.clone(),
            group: process.group.clone(),
            run_span: setup.run_span,
            scope: InstrumentationScope::builder("hopline-runtime").with_version(env!("CARGO_PKG_VERSION")).build(),
            resource: Resource::builder_empty().with_attributes(attributes.clone()).build(),
        }
    }

    /// A record's name, kind and attributes, in the order both encodings write them.
    fn describe<'a>(
        &'a self,
        record: &'a SpanRecord,
        attribute: &mut dyn FnMut(&'static str, Value<'a>),
    ) -> (Cow<'a, str>, SpanKind) {
        if !matches!(record.kind, Kind::Run | Kind::Job) {
            attribute(attr::SEQ, Value::Int(record.seq as i64));
        }
        attribute(attr::CORRELATION_ID, Value::Hex128(record.correlation_id.0));
        let group = |index: u16| -> Cow<'a, str> {
            match self.names.groups.get(usize::from(index)) {
                Some(name) => Cow::Borrowed(name.as_str()),
                None => Cow::Owned(format!("group {index}")),
            }
        };
        match record.kind {
            Kind::Run => ("run".into(), SpanKind::Internal),
            Kind::Job => ("job".into(), SpanKind::Server),
            Kind::Source => ("source".into(), SpanKind::Internal),
            Kind::Node { index } => {
                let name: Cow<'a, str> = match self.names.nodes.get(usize::from(index)) {
                    Some(name) => Cow::Borrowed(name.as_str()),
                    None => Cow::Owned(format!("node {index}")),
                };
                attribute(attr::NODE, Value::Str(name.clone()));
                if let Some(group) = &self.group {
                    attribute(attr::PROCESS_GROUP, Value::Str(group.as_str().into()));
                }
                if let Some(from) = record.handoff_from {
                    attribute(attr::HANDOFF_FROM, Value::Str(group(from)));
                }
                attribute(attr::ROUTE_HOP, Value::Int(i64::from(record.route_hop)));
                let outcome = match &record.outcome {
                    Outcome::Emitted(0) => "dropped",
                    Outcome::Failed(_) => "error",
                    Outcome::Emitted(_) | Outcome::None => "emitted",
                };
                attribute(attr::OUTCOME, Value::Str(outcome.into()));
                match record.outcome {
                    Outcome::Emitted(n) if n > 1 => attribute("hopline.emitted", Value::Int(i64::from(n))),
                    _ => {}
                }
                (name, SpanKind::Internal)
            }
            Kind::Send { to } => {
                let to = group(to);
                attribute(attr::ROUTE_HOP, Value::Int(i64::from(record.route_hop)));
                attribute(attr::MESSAGING_SYSTEM, Value::Str("hopline".into()));
                attribute(attr::MESSAGING_OPERATION_TYPE, Value::Str("send".into()));
                attribute(attr::MESSAGING_DESTINATION_NAME, Value::Str(to.clone()));
                (format!("send {to}").into(), SpanKind::Producer)
            }
            Kind::Receive { from } => {
                let from = group(from);
                attribute(attr::ROUTE_HOP, Value::Int(i64::from(record.route_hop)));
                attribute(attr::HANDOFF_FROM, Value::Str(from.clone()));
                attribute(attr::MESSAGING_SYSTEM, Value::Str("hopline".into()));
                attribute(attr::MESSAGING_OPERATION_TYPE, Value::Str("receive".into()));
                if let Some(group) = &self.group {
                    attribute(attr::MESSAGING_DESTINATION_NAME, Value::Str(group.as_str().into()));
                }
                (format!("receive {from}").into(), SpanKind::Consumer)
            }
            Kind::Detail { name } => {
                attribute(attr::LEVEL, Value::Str(attr::LEVEL_DEBUG.into()));
                (name.into(), SpanKind::Internal)
            }
            Kind::Custom => match &record.custom {
                Some(custom) => {
                    for (key, value) in &custom.attributes {
                        attribute(
                            key,
                            match value {
                                AttrValue::Str(text) => Value::Str(Cow::Borrowed(text.as_str())),
                                AttrValue::Int(n) => Value::Int(*n),
                            },
                        );
                    }
                    let kind = if custom.client { SpanKind::Client } else { SpanKind::Internal };
                    (Cow::Borrowed(custom.name.as_str()), kind)
                }
                None => ("span".into(), SpanKind::Internal),
            },
        }
    }

    /// Whether the run span lives in another process: the supervisor's, seen from a worker.
    fn run_span_is_remote(&self) -> bool {
        self.group.is_some()
    }

    /// The run span a root span links to.
    fn link(&self, record: &SpanRecord) -> Option<TraceContext> {
        if record.kind == Kind::Source { self.run_span } else { None }
    }

    /// A record as the OpenTelemetry SDK's span (for the OTLP exporter).
    pub(super) fn span(&self, record: &SpanRecord) -> SpanData {
        let mut attributes = Vec::with_capacity(8);
        let (name, kind) = self.describe(record, &mut |key, value| {
            attributes.push(match value {
                Value::Int(n) => KeyValue::new(key, n),
                Value::Str(text) => KeyValue::new(key, text.into_owned()),
                Value::Hex128(n) => KeyValue::new(key, format!("{n:032x}")),
            })
        });
        let name = Cow::Owned(name.into_owned());
        let mut links = SpanLinks::default();
        if let Some(run) = self.link(record) {
            links.links.push(Link::with_context(span_context(&run.trace_id, &run.span_id, self.run_span_is_remote())));
        }
        let status = match &record.outcome {
            Outcome::Failed(message) => Status::error(message.clone()),
            Outcome::None | Outcome::Emitted(_) => Status::Unset,
        };
        SpanData {
            span_context: span_context(&record.trace_id, &record.span_id, false),
            parent_span_id: SpanId::from_bytes(record.parent_span_id),
            parent_span_is_remote: is_remote(record),
            span_kind: kind,
            name,
            start_time: time(record.start_ns),
            end_time: time(record.end_ns.max(record.start_ns)),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links,
            status,
            instrumentation_scope: self.scope.clone(),
        }
    }

    /// One OTLP JSON line (a `TracesData` object) holding `records`, written straight from
    /// the records: the OTLP/JSON mapping (hex ids, 64-bit integers as strings, enums as
    /// numbers) that the SDK's conversion and `opentelemetry-proto`'s serde would give, at a
    /// fraction of their cost (the forensic trace and span files take every span).
    pub(super) fn json_line(&self, records: &[SpanRecord]) -> String {
        self.json_lines(records, usize::MAX).pop().unwrap_or_default()
    }

    /// `records` as OTLP JSON lines of at most about `max_bytes` each (a line ends after the
    /// span that reaches the bound; a span's error message is bounded where it is recorded).
    pub(super) fn json_lines(&self, records: &[SpanRecord], max_bytes: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let mut out = String::new();
        for record in records {
            if out.is_empty() {
                out.reserve(self.json_prefix.len() + records.len().min(4096) * 640);
                out.push_str(&self.json_prefix);
            } else {
                out.push(',');
            }
            self.write_span_json(record, &mut out);
            if out.len() >= max_bytes {
                out.push_str("]}]}]}");
                lines.push(std::mem::take(&mut out));
            }
        }
        if !out.is_empty() {
            out.push_str("]}]}]}");
            lines.push(out);
        }
        lines
    }

    fn write_span_json(&self, record: &SpanRecord, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str("{\"traceId\":\"");
        push_hex(out, &record.trace_id);
        out.push_str("\",\"spanId\":\"");
        push_hex(out, &record.span_id);
        out.push_str("\",\"parentSpanId\":\"");
        if record.parent_span_id != [0; 8] {
            push_hex(out, &record.parent_span_id);
        }
        let flags = span_flags(is_remote(record));
        let mut attributes = String::with_capacity(400);
        let (name, kind) = self.describe(record, &mut |key, value| {
            attributes.push_str(if attributes.is_empty() { "{\"key\":\"" } else { ",{\"key\":\"" });
            attributes.push_str(key);
            attributes.push_str("\",\"value\":{");
            match value {
                Value::Int(n) => {
                    let _ = write!(attributes, "\"intValue\":\"{n}\"");
                }
                Value::Str(text) => {
                    attributes.push_str("\"stringValue\":");
                    push_json_string(&mut attributes, &text);
                }
                Value::Hex128(n) => {
                    let _ = write!(attributes, "\"stringValue\":\"{n:032x}\"");
                }
            }
            attributes.push_str("}}");
        });
        let _ = write!(out, "\",\"flags\":{flags},\"name\":");
        push_json_string(out, &name);
        let kind = match kind {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        };
        let _ = write!(
            out,
            ",\"kind\":{kind},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",\"attributes\":[",
            record.start_ns,
            record.end_ns.max(record.start_ns)
        );
        out.push_str(&attributes);
        out.push_str("],\"links\":[");
        if let Some(run) = self.link(record) {
            out.push_str("{\"traceId\":\"");
            push_hex(out, &run.trace_id);
            out.push_str("\",\"spanId\":\"");
            push_hex(out, &run.span_id);
            let _ = write!(out, "\",\"flags\":{}}}", span_flags(self.run_span_is_remote()));
        }
        out.push_str("],\"status\":{");
        match &record.outcome {
            Outcome::Failed(message) => {
                out.push_str("\"code\":2,\"message\":");
                push_json_string(out, message);
            }
            Outcome::None | Outcome::Emitted(_) => out.push_str("\"code\":0"),
        }
        out.push_str("}}");
    }

    /// One OTLP JSON line the SDK's way: `SpanData`, `opentelemetry-proto`'s conversion and its
    /// serde mapping. The reference the direct writer is tested against.
    #[cfg(test)]
    fn json_line_via_sdk(&self, records: &[SpanRecord]) -> String {
        use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
        use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
        let resource = ResourceAttributesWithSchema::from(&self.resource);
        let spans = records.iter().map(|r| self.span(r)).collect();
        let data = opentelemetry_proto::tonic::trace::v1::TracesData {
            resource_spans: group_spans_by_resource_and_scope(spans, &resource),
        };
        serde_json::to_string(&data).expect("serialisable")
    }
}

/// An attribute value, borrowed where it can be.
enum Value<'a> {
    Int(i64),
    Str(Cow<'a, str>),
    /// A 128-bit id written as 32 lowercase hex digits.
    Hex128(u128),
}

/// Whether the span's parent lives in another process: a consumer span's producer, or the
/// upstream span a root continues (an event that arrived with a trace context).
fn is_remote(record: &SpanRecord) -> bool {
    match record.kind {
        Kind::Receive { .. } => true,
        Kind::Source | Kind::Run | Kind::Job => record.parent_span_id != [0; 8],
        _ => false,
    }
}

/// OTLP span flags: the W3C flags (sampled) and, in bits 8 and 9, that the parent's
/// remoteness is known and whether it is remote.
fn span_flags(remote: bool) -> u32 {
    1 | 0x100 | if remote { 0x200 } else { 0 }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// `text` as a JSON string, quoted and escaped.
fn push_json_string(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn span_context(trace_id: &[u8; 16], span_id: &[u8; 8], remote: bool) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(*trace_id),
        SpanId::from_bytes(*span_id),
        TraceFlags::SAMPLED,
        remote,
        TraceState::default(),
    )
}

fn time(unix_ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(unix_ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopline_model::CorrelationId;
    use hopline_model::config::{EffectiveTracing, Sampler, SpanLevel};
    use opentelemetry_proto::tonic::trace::v1::TracesData;

    fn converter() -> Converter {
        let tracing = EffectiveTracing {
            enabled: true,
            service_name: "t".into(),
            sampler: Sampler::AlwaysOn,
            level: SpanLevel::Debug,
            otlp: None,
            stdout: false,
            files: Vec::new(),
            forensic: None,
            batch: BatchConfig::default(),
        };
        let setup = TracerSetup {
            tracing: &tracing,
            config_dir: std::path::Path::new(""),
            process: ProcessIdentity {
                service_name: "t-policy".into(),
                instance_id: "run-policy-1".into(),
                pid: 42,
                group: Some("policy".into()),
            },
            names: Names {
                nodes: vec!["parse".into(), "po\"li\ncies".into()],
                groups: vec!["ingest".into(), "policy".into()],
            },
            opens_roots: false,
            run_span: Some(TraceContext { trace_id: [9; 16], span_id: [8; 8], flags: 1 }),
            forensic: None,
            stdout_via: None,
            append_files: false,
        };
        Converter::new(&setup)
    }

    fn record(kind: Kind, outcome: Outcome) -> SpanRecord {
        SpanRecord {
            trace_id: [0xab; 16],
            span_id: [0x01, 2, 3, 4, 5, 6, 7, 0xff],
            parent_span_id: if kind == Kind::Source { [0; 8] } else { [0x10; 8] },
            kind,
            start_ns: 1_764_000_000_123_456_789,
            end_ns: 1_764_000_000_123_999_999,
            seq: 17,
            correlation_id: CorrelationId(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
            route_hop: 2,
            handoff_from: if matches!(kind, Kind::Node { .. }) { Some(0) } else { None },
            outcome,
            custom: None,
        }
    }

    fn sorted(mut data: TracesData) -> TracesData {
        for resource in &mut data.resource_spans {
            if let Some(r) = resource.resource.as_mut() {
                r.attributes.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        data
    }

    #[test]
    fn the_direct_json_is_what_the_sdk_and_the_official_mapping_would_write() {
        let convert = converter();
        let records = vec![
            record(Kind::Run, Outcome::Failed("node `x` failed on event 3: bad \"amount\"\n\tthen\u{1}".into())),
            record(Kind::Source, Outcome::None),
            SpanRecord { parent_span_id: [3; 8], ..record(Kind::Source, Outcome::None) },
            record(Kind::Node { index: 0 }, Outcome::Emitted(1)),
            record(Kind::Node { index: 1 }, Outcome::Emitted(3)),
            record(Kind::Node { index: 1 }, Outcome::Emitted(0)),
            record(Kind::Node { index: 7 }, Outcome::Failed("broken".into())),
            record(Kind::Send { to: 1 }, Outcome::None),
            record(Kind::Receive { from: 0 }, Outcome::None),
            record(Kind::Detail { name: "check velocity limits" }, Outcome::None),
        ];
        let direct: TracesData = serde_json::from_str(&convert.json_line(&records)).expect("valid OTLP JSON");
        let via_sdk: TracesData = serde_json::from_str(&convert.json_line_via_sdk(&records)).unwrap();
        assert_eq!(sorted(direct), sorted(via_sdk));
    }

    #[test]
    fn lines_for_the_supervisor_stay_under_their_bound_and_lose_no_span() {
        let convert = converter();
        let records: Vec<SpanRecord> =
            (0..5000).map(|_| record(Kind::Node { index: 0 }, Outcome::Emitted(1))).collect();
        let lines = convert.json_lines(&records, 64 * 1024);
        assert!(lines.len() > 10, "{} lines", lines.len());
        let mut spans = 0;
        for line in &lines {
            assert!(line.len() < 64 * 1024 + 2048, "{} bytes", line.len());
            let data: TracesData = serde_json::from_str(line).unwrap();
            spans += data.resource_spans[0].scope_spans[0].spans.len();
        }
        assert_eq!(spans, 5000);
        assert!(convert.json_lines(&[], 1024).is_empty());
    }
}
