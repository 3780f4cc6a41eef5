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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime};

use hopline_model::TraceContext;
use hopline_model::config::{BatchConfig, OtlpExport, OtlpProtocol};
use hopline_model::trace::{Outcome, SpanKind as Kind, SpanRecord};
use hopline_trace::attributes as attr;
use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use serde::{Deserialize, Serialize};

use super::{ForensicSend, TraceStartError, TracerSetup};

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
    /// `otlp`, `file PATH`, `stdout`, `forensic`.
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
    /// Signalled when the thread has taken spans off the queue (a lossless destination's
    /// offer waits on it).
    taken: Condvar,
    taken_lock: Mutex<()>,
}

impl Counters {
    /// `n` spans have left the queue.
    fn dequeued(&self, n: u64) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        let _guard = self.taken_lock.lock().expect("queue lock");
        self.taken.notify_all();
    }
}

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
            counters.queued.fetch_add(fits, Ordering::AcqRel);
            if queue.send((Arc::clone(batch), 0..fits as usize)).is_err() {
                counters.queued.fetch_sub(fits, Ordering::AcqRel);
                counters.dropped.fetch_add(fits, Ordering::Relaxed);
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
        drop(self.queue.take());
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
    Forensic(ForensicSend),
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
            "otlp".into(),
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
        let writer = Box::new(std::io::stdout());
        destinations.push(spawn("stdout".into(), Target::Lines(writer), &convert, tracing.batch, None));
    }
    // The forensic sender is taken by value: only one destination may own it.
    if let Some(send) = setup.forensic.take() {
        destinations.push(spawn("forensic".into(), Target::Forensic(send), &convert, tracing.batch, None));
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
    Destination {
        name,
        // A thread that could not start takes nothing: every offer is dropped and counted.
        queue: spawned.is_ok().then_some(queue),
        counters,
        max_queue: batch.max_queue_size as u64,
        lossless,
        done,
        flush_deadline,
    }
}

/// The destination thread: export full batches at once, partial ones after the scheduled
/// delay, everything when the queue closes. After the queue has closed, one failed export
/// gives up on the rest (counted as dropped): the run is over and waiting on a collector that
/// fails would only delay its exit.
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
    loop {
        if !closed {
            let received = match oldest {
                None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(since) => receiver.recv_timeout(batch.scheduled_delay.saturating_sub(since.elapsed())),
            };
            match received {
                Ok(piece) => {
                    count += piece.1.len();
                    pending.push_back(piece);
                    oldest.get_or_insert_with(Instant::now);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => closed = true,
            }
        }
        let due = oldest.is_some_and(|since| since.elapsed() >= batch.scheduled_delay);
        while count >= batch.max_export_batch_size || (count > 0 && (closed || due)) {
            let records = take(&mut pending, batch.max_export_batch_size);
            count -= records.len();
            let n = records.len() as u64;
            let spans: Vec<SpanData> = records.iter().map(|r| convert.span(r)).collect();
            match export(&mut target, spans, convert) {
                Ok(()) => {
                    counters.exported.fetch_add(n, Ordering::Relaxed);
                }
                Err(error) => {
                    counters.failed.fetch_add(n, Ordering::Relaxed);
                    *counters.last_error.lock().expect("error lock") = Some(error);
                    if closed {
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

fn export(target: &mut Target, spans: Vec<SpanData>, convert: &Converter) -> Result<(), String> {
    match target {
        Target::Otlp(exporter) => block_on(exporter.export(spans)).map_err(|e| e.to_string()),
        Target::Lines(writer) => {
            let mut line = convert.json_line(spans)?;
            line.push('\n');
            writer.write_all(line.as_bytes()).and_then(|()| writer.flush()).map_err(|e| e.to_string())
        }
        Target::Forensic(send) => {
            let line = convert.json_line(spans)?;
            if send(line) { Ok(()) } else { Err("the supervisor is gone".into()) }
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
        Converter {
            names: setup.names.clone(),
            group: process.group.clone(),
            run_span: setup.run_span,
            scope: InstrumentationScope::builder("hopline-runtime").with_version(env!("CARGO_PKG_VERSION")).build(),
            resource: Resource::builder_empty().with_attributes(attributes).build(),
        }
    }

    fn group_name(&self, index: u16) -> String {
        self.names.groups.get(usize::from(index)).cloned().unwrap_or_else(|| format!("group {index}"))
    }

    pub(super) fn span(&self, record: &SpanRecord) -> SpanData {
        let mut attributes = Vec::with_capacity(8);
        if record.kind != Kind::Run {
            attributes.push(KeyValue::new(attr::SEQ, record.seq as i64));
        }
        attributes.push(KeyValue::new(attr::CORRELATION_ID, record.correlation_id.to_string()));
        let mut links = SpanLinks::default();
        let (name, kind): (Cow<'static, str>, SpanKind) = match record.kind {
            Kind::Run => ("run".into(), SpanKind::Internal),
            Kind::Source => {
                if let Some(run) = self.run_span {
                    links.links.push(Link::with_context(span_context(&run.trace_id, &run.span_id)));
                }
                ("source".into(), SpanKind::Internal)
            }
            Kind::Node { index } => {
                let name = self.names.nodes.get(usize::from(index)).cloned().unwrap_or_else(|| format!("node {index}"));
                attributes.push(KeyValue::new(attr::NODE, name.clone()));
                let outcome = match &record.outcome {
                    Outcome::Emitted(0) => "dropped",
                    Outcome::Failed(_) => "error",
                    Outcome::Emitted(_) | Outcome::None => "emitted",
                };
                attributes.push(KeyValue::new(attr::OUTCOME, outcome));
                match record.outcome {
                    Outcome::Emitted(n) if n > 1 => attributes.push(KeyValue::new("hopline.emitted", i64::from(n))),
                    _ => {}
                }
                (name.into(), SpanKind::Internal)
            }
            Kind::Send { to } => {
                let to = self.group_name(to);
                attributes.push(KeyValue::new(attr::ROUTE_HOP, i64::from(record.route_hop)));
                attributes.push(KeyValue::new(attr::MESSAGING_SYSTEM, "hopline"));
                attributes.push(KeyValue::new(attr::MESSAGING_OPERATION_TYPE, "send"));
                attributes.push(KeyValue::new(attr::MESSAGING_DESTINATION_NAME, to.clone()));
                (format!("send {to}").into(), SpanKind::Producer)
            }
            Kind::Receive { from } => {
                let from = self.group_name(from);
                attributes.push(KeyValue::new(attr::ROUTE_HOP, i64::from(record.route_hop)));
                attributes.push(KeyValue::new(attr::HANDOFF_FROM, from.clone()));
                attributes.push(KeyValue::new(attr::MESSAGING_SYSTEM, "hopline"));
                attributes.push(KeyValue::new(attr::MESSAGING_OPERATION_TYPE, "receive"));
                if let Some(group) = &self.group {
                    attributes.push(KeyValue::new(attr::MESSAGING_DESTINATION_NAME, group.clone()));
                }
                (format!("receive {from}").into(), SpanKind::Consumer)
            }
            Kind::Detail { name } => {
                attributes.push(KeyValue::new(attr::LEVEL, attr::LEVEL_DEBUG));
                (name.into(), SpanKind::Internal)
            }
        };
        let status = match &record.outcome {
            Outcome::Failed(message) => Status::error(message.clone()),
            Outcome::None | Outcome::Emitted(_) => Status::Unset,
        };
        SpanData {
            span_context: span_context(&record.trace_id, &record.span_id),
            parent_span_id: SpanId::from_bytes(record.parent_span_id),
            parent_span_is_remote: matches!(record.kind, Kind::Receive { .. }),
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

    /// One OTLP JSON line (a `TracesData` object) holding `spans`.
    fn json_line(&self, spans: Vec<SpanData>) -> Result<String, String> {
        use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
        use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
        let resource = ResourceAttributesWithSchema::from(&self.resource);
        let data = opentelemetry_proto::tonic::trace::v1::TracesData {
            resource_spans: group_spans_by_resource_and_scope(spans, &resource),
        };
        serde_json::to_string(&data).map_err(|e| e.to_string())
    }
}

fn span_context(trace_id: &[u8; 16], span_id: &[u8; 8]) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(*trace_id),
        SpanId::from_bytes(*span_id),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    )
}

fn time(unix_ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(unix_ns)
}
