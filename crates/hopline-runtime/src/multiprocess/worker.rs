//! A worker: one process group's nodes in their own process, between the previous group (or
//! the source) and the next group (or the sink).
//!
//! The worker builds its nodes once from the config text of its bootstrap, binds its data
//! port, says HELLO on its control connection, connects to the next group once the
//! supervisor names it, opens its source (first group), says READY, creates its sink (last
//! group) on OPEN-SINK and starts on START. It then
//! runs the memory profile's executor over its own nodes: the upstream link is its source,
//! the downstream link its sink. A node error or panic, a broken link, a source or sink
//! failure becomes a FAILED message with the place and the cause, and exit code 1.
//!
//! A worker never outlives its supervisor: it asks the kernel for SIGKILL when its parent
//! dies (Linux), checks that its parent is the supervisor that started it, and exits when
//! its control connection closes before the run is over.

use std::net::{TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hopline_model::config::MultiprocessConfig;
use hopline_model::{
    CorrelationId, Envelope, LineMessage, Message, NodeError, NodeReport, Pipeline, PipelineConfig, Registry,
    WireMessage,
};
use hopline_transport::{FrameReader, Limits};

use super::bootstrap::{Bootstrap, WorkerTracing};
use super::control::{ControlReader, ControlWriter, GroupStatus, SUPERVISOR, ToSupervisor, ToWorker};
use super::failure::{Failure, FailureKind, chain};
use super::link::{LinkCounters, LinkSender, spawn_listener};
use crate::adapters::{NdjsonSink, NdjsonSource, Sink, SinkError, Source, SourceError, Stoppable};
use crate::memory::{self, Work};
use crate::narration::{Actor, Fields, Level, Narrator};
use crate::report::thousands;
use crate::run::{self, Progress, RunError};
use crate::tracing::{
    ForensicSend, LineSend, Names, ProcessIdentity, TraceStartError, TraceStats, Tracer, TracerSetup,
};

/// Exit code of a worker that failed after reaching its supervisor (the failure was sent).
pub const EXIT_FAILED: i32 = 1;
/// Exit code of a worker that could not bootstrap (its stderr says why).
pub const EXIT_BOOTSTRAP: i32 = 2;
/// Exit code of a worker whose supervisor went away.
pub const EXIT_ORPHANED: i32 = 3;

/// Runs one worker to the end and returns its exit code.
pub fn run_worker<M: LineMessage + WireMessage>(registry: &Registry<M>, boot: Bootstrap) -> i32 {
    if !die_with_supervisor(boot.supervisor_pid) {
        eprintln!("hopline worker: started by pid {}, not by a hopline supervisor; exiting", parent_pid());
        return EXIT_ORPHANED;
    }
    install_panic_hook();
    leave_stop_signals_to_the_supervisor();
    match Worker::start(registry, &boot) {
        Ok(worker) => worker.run(),
        Err(StartError::Reported) => EXIT_FAILED,
        Err(StartError::Local(message)) => {
            eprintln!("hopline worker (group {}): {message}", boot.group);
            EXIT_BOOTSTRAP
        }
    }
}

/// Why a worker could not get to READY.
enum StartError {
    /// The supervisor has been told (FAILED on the control connection).
    Reported,
    /// Before the control connection exists: only this process's stderr can say it.
    Local(String),
}

impl From<String> for StartError {
    fn from(message: String) -> Self {
        StartError::Local(message)
    }
}

impl From<&str> for StartError {
    fn from(message: &str) -> Self {
        StartError::Local(message.into())
    }
}

/// What the control thread passes on to the main thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    OpenSink,
    Start,
}

/// Counters the heartbeat thread reads while the executor runs.
#[derive(Default)]
struct Counters {
    records_in: AtomicU64,
    records_out: AtomicU64,
    bytes_read: AtomicU64,
    bytes_total: AtomicU64,
    link: Arc<LinkCounters>,
}

struct Worker<M: Message> {
    group: String,
    pid: u32,
    holds_source: bool,
    pipeline: Pipeline<M>,
    source: Box<dyn Source<M>>,
    sink: Box<dyn Sink<M>>,
    /// The sink's path, for the group that creates it on OPEN-SINK.
    output: Option<String>,
    downstream: Option<LinkSender<M>>,
    batch_size: usize,
    control: Arc<Mutex<ControlWriter>>,
    /// The supervisor's messages; moved to the control thread at READY.
    control_reader: Option<ControlReader>,
    rejects: Option<Arc<Mutex<FrameReader>>>,
    counters: Arc<Counters>,
    heartbeat_interval: Duration,
    stop: Arc<AtomicBool>,
    /// What this worker traces (the supervisor resolved it), and the names its spans use.
    tracing: Option<(WorkerTracing, Names)>,
    correlation_id: CorrelationId,
    /// The trace stats of the finished tracer, for the final status.
    trace_stats: Option<TraceStats>,
    /// This worker's own narration (`--narrate`), on the stdout it shares with the supervisor.
    narrator: Option<Narrator>,
}

impl<M: LineMessage + WireMessage> Worker<M> {
    /// Everything up to READY. Errors before the control connection exists go to stderr;
    /// after that they go to the supervisor as FAILED.
    fn start(registry: &Registry<M>, boot: &Bootstrap) -> Result<Worker<M>, StartError> {
        let config = PipelineConfig::from_yaml(&boot.config_origin, &boot.config_text).map_err(|e| e.to_string())?;
        let mp: &MultiprocessConfig =
            config.runtime.multiprocess.as_ref().ok_or("the config is not for the multiprocess profile")?;
        let group = mp
            .groups
            .get(usize::from(boot.group))
            .ok_or_else(|| format!("the config has no process group {}", boot.group))?
            .clone();
        let pid = std::process::id();
        let narrator = boot.narrate.then(|| {
            let actor = Actor { process: "worker".into(), group: Some(group.name.clone()), pid };
            Narrator::stdout(actor, boot.correlation_id)
        });
        let mut pipeline = registry.build(&config, &[M::LINE], &[M::RECORD]).map_err(|e| e.to_string())?;
        let stages: Vec<_> = pipeline.stages.drain(group.nodes.clone()).collect();
        let pipeline = Pipeline { stages };
        let node_names = run::node_names(&pipeline);
        let counters = Arc::new(Counters::default());
        let skew_ms = mp.transport.max_clock_skew.as_millis() as u64;

        // The data port, before HELLO, so HELLO can say where it is.
        let listener = if group.index > 0 {
            let listener = TcpListener::bind((mp.host.as_str(), 0))
                .map_err(|e| format!("cannot bind a data port on {}: {e}", mp.host))?;
            Some(listener)
        } else {
            None
        };
        let data_addr = match &listener {
            Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?.to_string()),
            None => None,
        };

        let stream = TcpStream::connect(boot.control_addr)
            .map_err(|e| format!("cannot connect to the supervisor at {}: {e}", boot.control_addr))?;
        let _ = stream.set_nodelay(true);
        let read_half = stream.try_clone().map_err(|e| e.to_string())?;
        let mut control = ControlWriter::new(stream, boot.key.for_link(group.index, SUPERVISOR), group.index);
        let mut control_reader = ControlReader::new(read_half, boot.key.for_link(SUPERVISOR, group.index), skew_ms);
        control
            .send(&ToSupervisor::Hello { group: group.index, pid, data_addr })
            .map_err(|e| format!("cannot greet the supervisor: {e}"))?;
        let control = Arc::new(Mutex::new(control));
        let fail = |kind: FailureKind, node: Option<&str>, cause: String| -> StartError {
            let mut failure = Failure::new(kind, &group.name, Some(pid), cause.clone());
            failure.node = node.map(str::to_string);
            let message = ToSupervisor::Failed { failure, status: GroupStatus::default(), nodes: Vec::new() };
            match control.lock().expect("control lock").send(&message) {
                Ok(()) => StartError::Reported,
                Err(_) => StartError::Local(cause),
            }
        };

        let downstream_addr = match control_reader.recv::<ToWorker>() {
            Ok(ToWorker::Peers { downstream }) => downstream,
            Ok(other) => return Err(fail(FailureKind::LifecycleStart, None, format!("expected PEERS, got {other:?}"))),
            Err(e) => return Err(format!("no PEERS from the supervisor: {e}").into()),
        };

        // Input: the source, or frames from the previous group.
        let mut rejects = None;
        let source: Box<dyn Source<M>> = if group.source {
            let source = NdjsonSource::open(&boot.input, boot.correlation_id)
                .map_err(|e| fail(FailureKind::Execution, Some("source"), chain(&e)))?;
            if let Some(narrator) = &narrator {
                let input = if boot.input == "-" { "standard input" } else { boot.input.as_str() };
                let mut fields = Fields::new();
                if let (_, Some(size)) = Source::<M>::position(&source) {
                    fields = fields.with("bytes", size);
                }
                narrator.info("source.open", Some(input), &format!("`{}` reads {input}", group.name), fields);
            }
            Box::new(source)
        } else {
            let upstream = &mp.groups[usize::from(group.index) - 1];
            let limits = Limits {
                max_frame_bytes: mp.transport.max_frame_bytes,
                max_clock_skew_ms: skew_ms,
                replay_window: mp.transport.replay_window,
            };
            let reader = FrameReader::new(boot.key.for_link(upstream.index, group.index), limits)
                .map_err(|e| fail(FailureKind::LifecycleStart, None, e.to_string()))?;
            let reader = Arc::new(Mutex::new(reader));
            rejects = Some(Arc::clone(&reader));
            let listener = listener.expect("bound above for every group after the first");
            let source = spawn_listener::<M>(listener, reader, upstream.index, &upstream.name, counters.link.clone())
                .map_err(|e| {
                fail(FailureKind::LifecycleStart, None, format!("cannot start the data listener: {e}"))
            })?;
            Box::new(source)
        };

        // Output: frames to the next group, or the sink, which is created only at START: by
        // then the source is open, so a missing input never truncates an existing output
        // (the memory profile's order).
        let (output, downstream) = if group.sink {
            (Some(boot.output.clone()), None)
        } else {
            let next = &mp.groups[usize::from(group.index) + 1];
            let addr = downstream_addr.ok_or_else(|| {
                fail(FailureKind::LifecycleStart, None, format!("the supervisor named no address for `{}`", next.name))
            })?;
            let stream = TcpStream::connect(&addr).map_err(|e| {
                fail(FailureKind::Transport, None, format!("cannot connect to `{}` at {addr}: {e}", next.name))
            })?;
            let _ = stream.set_nodelay(true);
            let mut sender = LinkSender::new(
                stream,
                &boot.key,
                group.index,
                next.index,
                &next.name,
                mp.transport.max_frame_bytes,
                config.runtime.batch_size,
                counters.link.clone(),
            );
            sender.greet().map_err(|e| fail(FailureKind::Transport, None, chain(&e)))?;
            (None, Some(sender))
        };

        control.lock().expect("control lock").send(&ToSupervisor::Ready).map_err(|e| e.to_string())?;
        Ok(Worker {
            group: group.name.clone(),
            pid,
            holds_source: group.source,
            pipeline,
            source,
            sink: Box::new(NoSink),
            output,
            downstream,
            batch_size: config.runtime.batch_size,
            control,
            control_reader: Some(control_reader),
            rejects,
            counters,
            heartbeat_interval: mp.heartbeat_interval,
            stop: Arc::new(AtomicBool::new(false)),
            tracing: boot
                .tracing
                .clone()
                .map(|t| (t, Names { nodes: node_names, groups: mp.groups.iter().map(|g| g.name.clone()).collect() })),
            correlation_id: boot.correlation_id,
            trace_stats: None,
            narrator,
        })
    }

    /// From START to DONE or FAILED.
    fn run(mut self) -> i32 {
        // From READY on, the supervisor hears from this worker (heartbeats) and can stop it.
        let finished = Arc::new(AtomicBool::new(false));
        let Some(orders) = self.spawn_control_thread(Arc::clone(&finished)) else {
            return EXIT_ORPHANED;
        };
        self.spawn_heartbeat_thread(Arc::clone(&finished));

        if let Some(path) = self.output.take() {
            // The last group creates the sink when every worker is READY (the source is open),
            // before START: a sink that cannot be created stops the run before any input is
            // read, as in the memory profile. Creating it may block (a FIFO without a reader).
            if orders.recv() != Ok(Order::OpenSink) {
                return EXIT_ORPHANED;
            }
            match NdjsonSink::create(&path) {
                Ok(sink) => {
                    self.sink = Box::new(sink);
                    if let Some(narrator) = &self.narrator {
                        let message = format!("`{}` writes {path}", self.group);
                        narrator.info("sink.open", Some(&path), &message, Fields::new());
                    }
                }
                Err(e) => {
                    let mut failure = Failure::new(FailureKind::Execution, &self.group, Some(self.pid), chain(&e));
                    failure.node = Some("sink".into());
                    finished.store(true, Ordering::SeqCst);
                    self.send_failure(failure);
                    return EXIT_FAILED;
                }
            }
            if self.control.lock().expect("control lock").send(&ToSupervisor::SinkOpen).is_err() {
                return EXIT_ORPHANED;
            }
        }
        if orders.recv() != Ok(Order::Start) {
            return EXIT_ORPHANED;
        }

        let mut tracer = match self.start_tracer() {
            Ok(tracer) => tracer,
            Err(e) => {
                finished.store(true, Ordering::SeqCst);
                self.send_failure(Failure::new(FailureKind::LifecycleStart, &self.group, Some(self.pid), chain(&e)));
                return EXIT_FAILED;
            }
        };
        let result = self.execute(tracer.as_mut());
        // Every span reaches its destinations (the forensic ones the supervisor, before DONE).
        self.trace_stats = tracer.map(Tracer::finish);
        let status = self.status();
        let nodes: Vec<(String, NodeReport)> =
            self.pipeline.stages.iter().map(|s| (s.info.name.clone(), s.node.report())).collect();
        finished.store(true, Ordering::SeqCst);
        if let Some(narrator) = &self.narrator {
            let fields = Fields::new().with("records_in", status.records_in).with("records_out", status.records_out);
            match &result {
                Ok(()) => {
                    let message = format!(
                        "`{}` is done: {} in, {} out",
                        self.group,
                        thousands(status.records_in),
                        thousands(status.records_out)
                    );
                    narrator.info("worker.done", Some(&self.group), &message, fields);
                }
                Err(error) => {
                    let message = format!("`{}` failed: {}", self.group, self.describe(error));
                    narrator.say(Level::Error, "worker.failed", Some(&self.group), &message, fields);
                }
            }
        }
        let mut control = self.control.lock().expect("control lock");
        match result {
            Ok(()) => match control.send(&ToSupervisor::Done { status, nodes }) {
                Ok(()) => 0,
                Err(_) => EXIT_ORPHANED,
            },
            Err(error) => {
                let failure = self.describe(&error).bounded();
                let _ = control.send(&ToSupervisor::Failed { failure, status, nodes });
                EXIT_FAILED
            }
        }
    }

    /// This worker's tracer, on the executor's thread: its forensic spans go to the supervisor
    /// over the control connection.
    fn start_tracer(&self) -> Result<Option<Tracer>, TraceStartError> {
        let Some((tracing, names)) = &self.tracing else { return Ok(None) };
        let settings = &tracing.settings;
        let forensic: Option<ForensicSend> = settings.forensic.as_ref().map(|_| {
            let control = Arc::clone(&self.control);
            Box::new(move |line: String| {
                control.lock().expect("control lock").send(&ToSupervisor::Spans { line }).is_ok()
            }) as ForensicSend
        });
        let stdout_via: Option<LineSend> = settings.stdout.then(|| {
            let control = Arc::clone(&self.control);
            Box::new(move |line: String| {
                control.lock().expect("control lock").send(&ToSupervisor::Stdout { line }).is_ok()
            }) as LineSend
        });
        let tracer = Tracer::start(TracerSetup {
            tracing: settings,
            config_dir: Path::new(""),
            process: ProcessIdentity {
                service_name: format!("{}-{}", settings.service_name, self.group),
                instance_id: run::instance_id(self.correlation_id, &self.group),
                pid: self.pid,
                group: Some(self.group.clone()),
            },
            names: names.clone(),
            opens_roots: self.holds_source,
            run_span: tracing.run_span,
            forensic,
            stdout_via,
            append_files: true,
        })?;
        Ok(Some(tracer))
    }

    fn execute(&mut self, tracer: Option<&mut Tracer>) -> Result<(), RunError> {
        let counters = Arc::clone(&self.counters);
        let mut on_progress = |p: Progress| {
            counters.records_out.store(p.records_out, Ordering::Relaxed);
            counters.bytes_read.store(p.bytes_read, Ordering::Relaxed);
            counters.bytes_total.store(p.bytes_total.unwrap_or(u64::MAX), Ordering::Relaxed);
        };
        let mut source =
            Stoppable { inner: &mut *self.source, stop: &self.stop, records_in: Some(&self.counters.records_in) };
        let sink: &mut dyn Sink<M> = match &mut self.downstream {
            Some(link) => link,
            None => &mut *self.sink,
        };
        let pipeline = &mut self.pipeline;
        let batch_size = self.batch_size;
        IN_EXECUTOR.set(true);
        let result = catch_unwind(AssertUnwindSafe(|| {
            memory::execute(pipeline, &mut source, sink, batch_size, &mut on_progress, tracer)
        }));
        IN_EXECUTOR.set(false);
        let result = result.unwrap_or_else(|payload| {
            // A node panicked: name it and the events it was on, from the executor's record.
            let message = panic_message(payload.as_ref());
            let (node, message) = match memory::current_work() {
                Some(Work::Node { stage, seqs: Some((first, last)) }) => (
                    pipeline.stages[stage].info.name.clone(),
                    format!("{message} (while processing events {first} to {last})"),
                ),
                Some(Work::Node { stage, seqs: None }) => {
                    (pipeline.stages[stage].info.name.clone(), format!("{message} (while finishing)"))
                }
                Some(Work::Source) => ("source".into(), message),
                Some(Work::Sink) => ("sink".into(), message),
                None => ("(executor)".into(), message),
            };
            Err(RunError::Node { node, seq: None, error: NodeError::Panicked { message } })
        });
        match (&result, &mut self.downstream) {
            (Ok(counts), Some(link)) => {
                self.counters.records_out.store(counts.records_out, Ordering::Relaxed);
                link.finish().map_err(RunError::Sink)
            }
            (Ok(counts), None) => {
                self.counters.records_out.store(counts.records_out, Ordering::Relaxed);
                Ok(())
            }
            (Err(_), _) => {
                // Whatever reached the sink is flushed, so the output holds every record the
                // summary counts.
                let _ = self.sink.flush();
                result.map(|_| ())
            }
        }
    }

    fn describe(&self, error: &RunError) -> Failure {
        let mut failure = Failure::new(FailureKind::Execution, &self.group, Some(self.pid), String::new());
        match error {
            RunError::Node { node, seq, error } => {
                failure.node = Some(node.clone());
                failure.seq = if matches!(error, NodeError::Panicked { .. }) { None } else { *seq };
                failure.cause = chain(error);
            }
            RunError::Source(e @ SourceError::Link { hung_up, .. }) => {
                failure.kind = FailureKind::Transport;
                failure.consequence = *hung_up;
                failure.cause = chain(e);
            }
            RunError::Source(e) => {
                failure.node = Some("source".into());
                failure.cause = chain(e);
            }
            RunError::Sink(e @ SinkError::Link { source, .. }) => {
                use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
                failure.kind = FailureKind::Transport;
                failure.consequence = matches!(source.kind(), BrokenPipe | ConnectionReset | ConnectionAborted);
                failure.cause = chain(e);
            }
            RunError::Sink(e) => {
                failure.node = Some("sink".into());
                failure.stdout_closed = matches!(
                    e,
                    SinkError::Write { path, source }
                        if path == "stdout" && source.kind() == std::io::ErrorKind::BrokenPipe
                );
                failure.cause = chain(e);
            }
            other => failure.cause = chain(other),
        }
        failure
    }

    fn status(&self) -> GroupStatus {
        let mut status = status_of(&self.counters, self.rejects.as_ref(), self.holds_source);
        status.tracing = self.trace_stats.clone();
        status
    }

    fn send_failure(&self, failure: Failure) {
        let message = ToSupervisor::Failed { failure: failure.bounded(), status: self.status(), nodes: Vec::new() };
        let _ = self.control.lock().expect("control lock").send(&message);
    }

    /// Reads the supervisor's orders: STOP sets the stop flag at once (the executor may be
    /// busy); OPEN-SINK and START go to the main thread. Exits the process if the supervisor
    /// goes away before the run is over.
    fn spawn_control_thread(&mut self, finished: Arc<AtomicBool>) -> Option<std::sync::mpsc::Receiver<Order>> {
        let mut reader = self.control_reader.take()?;
        let stop = Arc::clone(&self.stop);
        let group = self.group.clone();
        let (orders, received) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("control".into()).spawn(move || {
            loop {
                let order = match reader.recv::<ToWorker>() {
                    Ok(ToWorker::Stop) => {
                        stop.store(true, Ordering::SeqCst);
                        continue;
                    }
                    Ok(ToWorker::OpenSink) => Order::OpenSink,
                    Ok(ToWorker::Start) => Order::Start,
                    Ok(ToWorker::Peers { .. }) => continue,
                    Err(e) => {
                        if !finished.load(Ordering::SeqCst) {
                            eprintln!("hopline worker `{group}`: lost the supervisor ({e}); exiting");
                            std::process::exit(EXIT_ORPHANED);
                        }
                        return;
                    }
                };
                let _ = orders.send(order);
            }
        });
        spawned.ok().map(|_| received)
    }

    fn spawn_heartbeat_thread(&self, finished: Arc<AtomicBool>) {
        let control = Arc::clone(&self.control);
        let counters = Arc::clone(&self.counters);
        let rejects = self.rejects.clone();
        let holds_source = self.holds_source;
        let interval = self.heartbeat_interval;
        let _ = std::thread::Builder::new().name("heartbeat".into()).spawn(move || {
            loop {
                std::thread::sleep(interval);
                if finished.load(Ordering::SeqCst) {
                    return;
                }
                let status = status_of(&counters, rejects.as_ref(), holds_source);
                let mut control = control.lock().expect("control lock");
                if finished.load(Ordering::SeqCst) || control.send(&ToSupervisor::Heartbeat { status }).is_err() {
                    return;
                }
            }
        });
    }
}

fn status_of(counters: &Counters, rejects: Option<&Arc<Mutex<FrameReader>>>, holds_source: bool) -> GroupStatus {
    let link = &counters.link;
    let rejects = match rejects {
        Some(reader) => {
            let counts = *reader.lock().expect("frame reader lock").reject_counts();
            counts.by_reason().iter().filter(|(_, n)| *n > 0).map(|(r, n)| (r.to_string(), *n)).collect()
        }
        None => Vec::new(),
    };
    let total = counters.bytes_total.load(Ordering::Relaxed);
    GroupStatus {
        records_in: counters.records_in.load(Ordering::Relaxed),
        records_out: counters.records_out.load(Ordering::Relaxed),
        frames_sent: link.frames_sent.load(Ordering::Relaxed),
        bytes_sent: link.bytes_sent.load(Ordering::Relaxed),
        frames_received: link.frames_received.load(Ordering::Relaxed),
        bytes_received: link.bytes_received.load(Ordering::Relaxed),
        rejects,
        refused_connections: link.refused_connections.load(Ordering::Relaxed),
        source_bytes: holds_source
            .then(|| (counters.bytes_read.load(Ordering::Relaxed), (total != u64::MAX).then_some(total))),
        tracing: None,
    }
}

/// The sink of a group that sends downstream instead (never written to).
struct NoSink;

impl<M: Message> Sink<M> for NoSink {
    fn write_batch(&mut self, batch: &mut Vec<Envelope<M>>) -> Result<(), SinkError> {
        batch.clear();
        Ok(())
    }
    fn holds_unflushed(&self) -> bool {
        false
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The last panic's message and place, recorded by the worker's panic hook (which prints
/// nothing: the supervisor reports the panic with its place).
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

thread_local! {
    /// Set while the executor runs under `catch_unwind`: a panic there is reported to the
    /// supervisor with its place, so the hook stays quiet.
    static IN_EXECUTOR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = panic_message(info.payload());
        let text = match info.location() {
            Some(at) => format!("{message} at {}:{}:{}", at.file(), at.line(), at.column()),
            None => message,
        };
        if !IN_EXECUTOR.get() {
            // Nobody catches this one: say it before the process goes.
            let thread = std::thread::current();
            eprintln!("hopline worker: thread `{}` panicked: {text}", thread.name().unwrap_or("?"));
        }
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(text);
        }
    }));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(recorded) = LAST_PANIC.lock().ok().and_then(|mut last| last.take()) {
        return recorded;
    }
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Stop signals sent to the whole service (systemd's default stop signals every process of the
/// unit) must not kill workers mid-stream: the supervisor gets them too and drains the run.
/// Handlers that only note the signal leave the decision to it; its death still ends the
/// worker (PR_SET_PDEATHSIG, the control connection).
fn leave_stop_signals_to_the_supervisor() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let noted = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&noted));
    }
}

fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

/// Asks for SIGKILL when the parent dies, then checks the parent is still the supervisor
/// (it may have died before the request took effect).
#[cfg(target_os = "linux")]
fn die_with_supervisor(supervisor_pid: u32) -> bool {
    // SAFETY: prctl(PR_SET_PDEATHSIG) reads its integer arguments only; no memory is shared.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    rc == 0 && parent_pid() == supervisor_pid
}

#[cfg(not(target_os = "linux"))]
fn die_with_supervisor(supervisor_pid: u32) -> bool {
    parent_pid() == supervisor_pid
}
