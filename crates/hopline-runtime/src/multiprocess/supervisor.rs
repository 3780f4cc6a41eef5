//! The supervisor: `hopline run` under the multiprocess profile.
//!
//! # Startup, in this order (each step logged with `--verbose`)
//!
//! 1. The config is validated and every node built once (type-checked source to sink), so a
//!    config error never starts a worker.
//! 2. The transport key is obtained (generated, or read from the file or variable the config
//!    names) and the control listener is bound.
//! 3. One worker per process group is spawned, in pipeline order: the same binary in its
//!    worker role, in its own process group (a terminal's Ctrl-C reaches the supervisor only),
//!    with its bootstrap written to its stdin. The key variable, if any, is removed from the
//!    worker's environment.
//! 4. Each worker binds its data port and says HELLO (its pid and port) on a signed control
//!    connection; the supervisor then sends each worker the next group's address (PEERS).
//! 5. Each worker connects to the next group (and greets it with a signed frame), the first
//!    group opens the source, and each says READY. If any worker is not READY within
//!    `ready_timeout`, every worker is killed (lifecycle-ready).
//! 6. OPEN-SINK: the last group creates the sink (only now, so a missing input never
//!    truncates an existing output) and says SINK-OPEN. Creating it may wait (a FIFO without a
//!    reader); heartbeats, which every worker sends from READY on, show the workers alive.
//! 7. START: the first group begins reading the source.
//!
//! # Running and stopping
//!
//! Workers send heartbeats with their counters (the progress bar and `status`); a worker
//! silent for `heartbeat_timeout` (counted from START, and not while the supervisor itself
//! was paused) is killed and reported. Heartbeats prove a worker's process is alive, not that
//! its nodes make progress: a node that loops for ever is found by a stop, not by them. The first SIGINT or SIGTERM sends
//! STOP to the first group: it stops reading, and the stream drains group by group behind an
//! `End` frame; workers flush, report DONE and exit; the supervisor reaps them. If that takes
//! longer than `stop_timeout`, or at a second signal, every worker is killed.
//!
//! SIGUSR1 prints a status table (each worker's state, counts and last heartbeat) and the run
//! goes on.
//!
//! # Failures
//!
//! A FAILED message, a worker that exits or is killed before DONE, a READY timeout: each
//! becomes a [`Failure`]. After the first one the supervisor stops the source group, lets the
//! others notice their broken links and report, waits up to `stop_timeout` for every worker
//! to exit (killing what is left), and returns the root cause with the rest as consequences,
//! and the counts of what reached the sink.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hopline_model::config::{EffectiveTracing, KeySource, MultiprocessConfig, RelativeTo, TraceFile};
use hopline_model::{CorrelationId, NodeReport, PipelineConfig};
use hopline_transport::TransportKey;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

use super::bootstrap::{Bootstrap, WorkerTracing};
use super::control::{ControlError, ControlReader, ControlWriter, GroupStatus, SUPERVISOR, ToSupervisor, ToWorker};
use super::failure::{Failure, FailureKind};
use crate::narration::{Fields, Level, Narrator};
use crate::report::{GroupReport, RunReport, thousands};
use crate::run::{self, Progress, RunError, resolve};
use crate::tracing::{Names, ProcessIdentity, RunTracing};

/// How the supervisor starts a worker: a program and the arguments that select its worker
/// role. By default the running binary with `worker`.
#[derive(Debug, Clone)]
pub struct WorkerProgram {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerProgram {
    /// The running executable, with the `worker` subcommand.
    pub fn current_exe() -> io::Result<WorkerProgram> {
        Ok(WorkerProgram { program: std::env::current_exe()?, args: vec!["worker".into()] })
    }
}

/// Everything a supervised run needs beyond the config.
pub struct Supervised<'a> {
    pub config: &'a PipelineConfig,
    /// The config's text, as validated; workers get this, not the file.
    pub config_text: &'a str,
    /// The config file's folder (a key file path is relative to it).
    pub config_dir: &'a Path,
    pub input: String,
    pub output: String,
    pub correlation_id: CorrelationId,
    /// The run's tracing, resolved (config, environment, flags).
    pub tracing: &'a EffectiveTracing,
    /// The supervisor's narration (`--narrate`); workers then narrate too.
    pub narrator: Option<&'a Narrator>,
    pub worker: WorkerProgram,
    /// Lifecycle lines (`--verbose`), each prefixed with the time since start.
    pub log: Option<&'a mut dyn FnMut(&str)>,
    /// What a user at the terminal should see even without `--verbose`: that a stop signal
    /// was understood, and the status table asked for with SIGUSR1.
    pub notices: Option<&'a mut dyn FnMut(&str)>,
}

/// A multiprocess run that failed: the root cause, what followed from it, and what got done.
#[derive(Debug)]
pub struct MultiprocessFailure {
    pub root: Failure,
    pub consequences: Vec<Failure>,
    /// Counts so far: `records_out` is what reached the sink (and was flushed).
    pub report: RunReport,
    /// Whether every worker was READY and the source had started: if not, nothing was read.
    pub ingress_started: bool,
    /// Whether the sink's count is final (its worker reported it when it stopped, after
    /// flushing) rather than its last heartbeat's.
    pub sink_count_final: bool,
    /// The signal that had the workers killed (a second SIGINT, a signal during startup).
    pub interrupted_by: Option<&'static str>,
}

enum Event {
    Hello {
        group: u16,
        pid: u32,
        data_addr: Option<String>,
        reader: ControlReader,
        writer: TcpStream,
    },
    Control {
        group: u16,
        message: ToSupervisor,
    },
    /// The control connection ended: closed (`None`), or broken with this reason.
    ControlLost {
        group: u16,
        reason: Option<String>,
    },
    /// Reading the supervisor's stdin (forwarded to the source group) failed.
    StdinFailed(String),
    /// A connection to the control port greeted with a frame that was refused.
    GreetingRejected(String),
    Signal(i32),
}

struct WorkerState {
    name: String,
    child: Child,
    pid: u32,
    writer: Option<ControlWriter>,
    data_addr: Option<String>,
    hello: bool,
    ready: bool,
    done: bool,
    failed: bool,
    control_lost: bool,
    exit: Option<ExitStatus>,
    last_heard: Instant,
    status: GroupStatus,
    /// `status` came with DONE or FAILED: the worker's last word, not a heartbeat's.
    final_status: bool,
    /// When its counts last moved (by its heartbeats): the stuck group of a drain that does not
    /// finish is the one that moved least recently.
    last_progress: Instant,
    /// When and why its control connection broke, if it did before DONE or FAILED.
    control_broken: Option<(Instant, String)>,
    nodes: Vec<(String, NodeReport)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    /// Draining after a stop signal or a failure, until this deadline.
    Draining(Instant),
    /// Every worker was sent SIGKILL.
    Killed,
}

/// How long the event loop waits for an event before it looks at exits and deadlines.
const TURN: Duration = Duration::from_millis(20);

/// How long a worker whose control connection broke has to exit on its own.
const CONTROL_GRACE: Duration = Duration::from_secs(1);

/// A turn of the event loop this much longer than [`TURN`] means the supervisor was paused.
const PAUSE: Duration = Duration::from_millis(250);

/// Runs a multiprocess config to the end.
pub fn supervise(run: Supervised<'_>, progress: &mut dyn FnMut(Progress)) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let mp = run.config.runtime.multiprocess.as_ref().expect("the caller checked the profile");
    let key = match &mp.transport.key {
        KeySource::Generate => TransportKey::generate(),
        KeySource::File(path) => TransportKey::from_file(resolve(run.config_dir, path)),
        KeySource::Env(var) => TransportKey::from_env(var),
    }
    .map_err(RunError::Key)?;
    // Every key of the run derives from the configured key and a fresh nonce: frames of one
    // run never verify in another, even with a key kept in a file. Workers get only this.
    let nonce = TransportKey::run_nonce().map_err(RunError::Key)?;
    let key = key.for_run(&nonce);
    let nonce_hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let (tx, rx) = mpsc::channel::<Event>();
    let mut sup = Supervisor {
        mp,
        started,
        key,
        workers: Vec::with_capacity(mp.groups.len()),
        failures: Vec::new(),
        phase: Phase::Starting,
        ready_deadline: started + mp.ready_timeout,
        stopped_by: None,
        peers_sent: false,
        sink_requested: false,
        sink_open: false,
        rejected_greetings: Vec::new(),
        ingress_started: false,
        interrupted_by: None,
        stdin_forward: None,
        tracing: None,
        narrator: run.narrator,
        tx,
        log: run.log,
        notices: run.notices,
    };
    let names: Vec<&str> = mp.groups.iter().map(|g| g.name.as_str()).collect();
    sup.log(&format!(
        "config validated: {}/{}, {} process groups ({})",
        run.config.app,
        run.config.scenario,
        mp.groups.len(),
        names.join(" → ")
    ));
    let bind_error = |source| RunError::Bind { what: "the control listener", host: mp.host.clone(), source };
    let listener = TcpListener::bind((mp.host.as_str(), 0)).map_err(bind_error)?;
    let control_addr = listener.local_addr().map_err(bind_error)?;
    sup.log(&format!("run nonce {nonce_hex} (the transport keys of this run derive from it)"));
    sup.log(&format!("control listener bound on {control_addr}"));
    spawn_signal_thread(sup.tx.clone());
    spawn_accept_thread(listener, sup.key.clone(), mp, sup.tx.clone());
    if run.tracing.enabled {
        let process = ProcessIdentity {
            service_name: run.tracing.service_name.clone(),
            instance_id: run::instance_id(run.correlation_id, "supervisor"),
            pid: std::process::id(),
            group: None,
        };
        let names = Names {
            nodes: run.config.nodes.iter().map(|n| n.name.clone()).collect(),
            groups: mp.groups.iter().map(|g| g.name.clone()).collect(),
        };
        let tracing = RunTracing::start(run.tracing, run.config_dir, run.correlation_id, process, names, false)?;
        sup.log(&format!("tracing: {}", run.tracing.describe()));
        sup.tracing = Some(tracing);
    }
    // Workers get the settings as resolved here, file paths as this process opens them.
    let worker_tracing = sup.tracing.as_ref().map(|t| {
        let mut settings = run.tracing.clone();
        for file in &mut settings.files {
            *file = TraceFile {
                path: file.path_from(run.config_dir).display().to_string(),
                relative_to: RelativeTo::WorkingDirectory,
            };
        }
        WorkerTracing { settings, run_span: t.run_span() }
    });

    for group in &mp.groups {
        let boot = Bootstrap {
            config_origin: run.config.origin.clone(),
            config_text: run.config_text.to_string(),
            group: group.index,
            key: sup.key.clone(),
            control_addr,
            supervisor_pid: std::process::id(),
            input: run.input.clone(),
            output: run.output.clone(),
            correlation_id: run.correlation_id,
            tracing: worker_tracing.clone(),
            narrate: run.narrator.is_some(),
        };
        let forward = (group.source && run.input == "-").then(|| sup.tx.clone());
        match spawn_worker(&run.worker, &boot, mp, forward) {
            Ok((child, forward)) => {
                sup.stdin_forward = sup.stdin_forward.take().or(forward);
                sup.log(&format!("worker `{}` spawned (pid {})", group.name, child.id()));
                sup.narrate(
                    Level::Info,
                    "worker.spawned",
                    &group.name,
                    &format!("started the worker of `{}` (pid {})", group.name, child.id()),
                    Fields::new().with("pid", child.id()),
                );
                sup.workers.push(WorkerState::new(&group.name, child));
            }
            Err(e) => {
                let cause = format!("cannot start a worker ({}): {e}", run.worker.program.display());
                sup.failures.push(Failure::new(FailureKind::LifecycleStart, &group.name, None, cause));
                break;
            }
        }
    }

    let mut last_turn = Instant::now();
    while !sup.finished() {
        match rx.recv_timeout(TURN) {
            Ok(event) => sup.handle(event, progress),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => unreachable!("the supervisor holds a sender"),
        }
        // Everything already queued is handled before any deadline is judged.
        while let Ok(event) = rx.try_recv() {
            sup.handle(event, progress);
        }
        let now = Instant::now();
        let gap = now.duration_since(last_turn);
        if gap > PAUSE.max(mp.heartbeat_interval) {
            // The supervisor itself was paused (Ctrl-Z, a debugger, an overloaded machine):
            // the workers' silence over that time is not theirs; the rest of it still is.
            let paused = gap - TURN;
            sup.workers.iter_mut().for_each(|w| w.last_heard = (w.last_heard + paused).min(now));
        }
        last_turn = now;
        sup.reap();
        sup.advance();
    }
    sup.log("every worker has exited");

    // "Stopped early, drained" only if the drain did finish.
    let stopped_by = sup.stopped_by.filter(|_| sup.failures.is_empty());
    let mut report = build_report(run.config, &sup.workers, started.elapsed(), stopped_by);
    if let Some(tracing) = sup.tracing.take() {
        let failure = Failure::root_index(&sup.failures).map(|i| sup.failures[i].to_string());
        let workers =
            sup.workers.iter().filter_map(|w| w.status.tracing.clone().map(|stats| (w.name.clone(), stats))).collect();
        report.tracing = Some(tracing.finish(failure, workers, "supervisor"));
    }
    match Failure::root_index(&sup.failures) {
        None => Ok(report),
        Some(root) => {
            let root = sup.failures.remove(root);
            let failure = MultiprocessFailure {
                root,
                consequences: sup.failures,
                report,
                ingress_started: sup.ingress_started,
                sink_count_final: sup.workers.last().is_some_and(|w| w.final_status),
                interrupted_by: sup.interrupted_by,
            };
            Err(RunError::Multiprocess(Box::new(failure)))
        }
    }
}

/// The supervisor's state between events.
struct Supervisor<'a> {
    mp: &'a MultiprocessConfig,
    started: Instant,
    key: TransportKey,
    /// One per process group, in pipeline order (fewer if a spawn failed).
    workers: Vec<WorkerState>,
    /// Every failure, in the order they were seen.
    failures: Vec<Failure>,
    phase: Phase,
    ready_deadline: Instant,
    stopped_by: Option<&'static str>,
    peers_sent: bool,
    /// OPEN-SINK was sent to the last group (every worker was READY).
    sink_requested: bool,
    sink_open: bool,
    /// Greetings refused on the control port, to explain a worker that never got through.
    rejected_greetings: Vec<String>,
    ingress_started: bool,
    interrupted_by: Option<&'static str>,
    stdin_forward: Option<Arc<StdinForward>>,
    /// The run span, the supervisor's tracer and the forensic trace, when the run traces.
    tracing: Option<RunTracing>,
    narrator: Option<&'a Narrator>,
    tx: Sender<Event>,
    log: Option<&'a mut dyn FnMut(&str)>,
    notices: Option<&'a mut dyn FnMut(&str)>,
}

impl Supervisor<'_> {
    fn narrate(&self, level: Level, action: &str, target: &str, message: &str, fields: Fields) {
        if let Some(narrator) = self.narrator {
            narrator.say(level, action, Some(target), message, fields);
        }
    }

    fn log(&mut self, line: &str) {
        if let Some(log) = self.log.as_mut() {
            log(&format!("[{:>8.3}s] {line}", self.started.elapsed().as_secs_f64()));
        }
    }

    fn notice(&mut self, text: &str) {
        if let Some(notice) = self.notices.as_mut() {
            notice(text);
        }
    }

    /// Every worker has exited and said its last word (or never connected).
    fn finished(&self) -> bool {
        let all_gone = self.workers.iter().all(|w| w.exit.is_some() && (w.control_lost || !w.hello));
        all_gone && (self.phase != Phase::Starting || self.workers.len() < self.mp.groups.len())
    }

    fn handle(&mut self, event: Event, progress: &mut dyn FnMut(Progress)) {
        match event {
            Event::Hello { group, pid, data_addr, reader, writer } => {
                self.on_hello(group, pid, data_addr, reader, writer)
            }
            Event::Control { group, message } => self.on_message(group, message, progress),
            Event::ControlLost { group, reason } => self.on_control_lost(group, reason),
            Event::GreetingRejected(why) => {
                self.log(&format!("refused a control connection: {why}"));
                self.rejected_greetings.push(why);
            }
            Event::StdinFailed(error) => {
                let Some(first) = self.workers.first() else { return };
                let mut failure = Failure::new(
                    FailureKind::Execution,
                    &first.name,
                    Some(first.pid),
                    format!("cannot read stdin: {error}"),
                );
                failure.node = Some("source".into());
                self.failures.push(failure);
            }
            Event::Signal(SIGUSR1) => {
                let table = status_table(&self.workers, self.started.elapsed(), self.phase);
                self.notice(&table);
            }
            Event::Signal(signal) => self.on_stop_signal(signal),
        }
    }

    fn on_hello(&mut self, group: u16, pid: u32, data_addr: Option<String>, reader: ControlReader, writer: TcpStream) {
        let Some(worker) = self.workers.get_mut(usize::from(group)) else { return };
        if worker.hello || worker.pid != pid {
            // Not the process started for this group, or a second greeting: refuse it.
            return;
        }
        worker.hello = true;
        worker.last_heard = Instant::now();
        worker.writer = Some(ControlWriter::new(writer, self.key.for_link(SUPERVISOR, group), SUPERVISOR));
        let line = match &data_addr {
            Some(addr) => format!("worker `{}` (pid {pid}) takes frames on {addr}", worker.name),
            None => format!("worker `{}` (pid {pid}) connected", worker.name),
        };
        worker.data_addr = data_addr;
        spawn_control_reader(group, reader, self.tx.clone());
        self.log(&line);
    }

    fn on_message(&mut self, group: u16, message: ToSupervisor, progress: &mut dyn FnMut(Progress)) {
        let worker = &mut self.workers[usize::from(group)];
        worker.last_heard = Instant::now();
        let (name, pid) = (worker.name.clone(), worker.pid);
        match message {
            ToSupervisor::Hello { .. } => {}
            ToSupervisor::Ready => {
                worker.ready = true;
                self.log(&format!("worker `{name}` (pid {pid}) ready"));
                let message = format!("`{name}` is ready (pid {pid})");
                self.narrate(Level::Info, "group.ready", &name, &message, Fields::new().with("pid", pid));
            }
            ToSupervisor::SinkOpen => {
                self.sink_open = true;
                self.log(&format!("worker `{name}` (pid {pid}) opened the sink"));
            }
            ToSupervisor::Heartbeat { status } => {
                if (status.records_in, status.records_out) != (worker.status.records_in, worker.status.records_out) {
                    worker.last_progress = Instant::now();
                }
                let rejected: u64 = status.rejects.iter().map(|(_, n)| n).sum();
                let before: u64 = worker.status.rejects.iter().map(|(_, n)| n).sum();
                if rejected > before && self.narrator.is_some() {
                    let reasons: Vec<String> =
                        status.rejects.iter().map(|(r, n)| format!("{n} {}", r.replace('_', " "))).collect();
                    let message = format!(
                        "`{name}` rejected {} more frames that were not from its upstream group ({} in all: {})",
                        rejected - before,
                        rejected,
                        reasons.join(", ")
                    );
                    let fields = Fields::new().with("rejected", rejected).with("new", rejected - before);
                    self.narrate(Level::Warn, "frames.rejected", &name, &message, fields);
                }
                let worker = &mut self.workers[usize::from(group)];
                worker.status = status;
                report_progress(&self.workers, progress);
            }
            ToSupervisor::Done { status, nodes } => {
                worker.status = status;
                worker.final_status = true;
                worker.nodes = nodes;
                worker.done = true;
                self.log(&format!("worker `{name}` (pid {pid}) done"));
            }
            ToSupervisor::Spans { line } => {
                if let Some(Err(e)) = self.tracing.as_ref().map(|t| t.add_forensic(&line)) {
                    self.log(&format!("cannot add `{name}`'s spans to the forensic trace: {e}"));
                }
            }
            ToSupervisor::Stdout { line } => {
                let mut stdout = io::stdout().lock();
                let _ = stdout.write_all(line.as_bytes()).and_then(|()| stdout.write_all(b"\n"));
                let _ = stdout.flush();
            }
            ToSupervisor::Failed { mut failure, status, nodes } => {
                worker.status = status;
                worker.final_status = true;
                worker.nodes = nodes;
                worker.failed = true;
                failure.pid = Some(pid);
                self.log(&format!("worker `{name}` (pid {pid}) failed: {failure}"));
                self.narrate(Level::Error, "group.failed", &name, &failure.to_string(), Fields::new().with("pid", pid));
                self.failures.push(failure);
            }
        }
    }

    /// A control connection that ends is expected after DONE or FAILED. One that breaks (a
    /// frame rejected, a read error) is often a worker dying with bytes unread; if the worker
    /// has not exited within [`CONTROL_GRACE`], nobody can supervise it: it is killed and the
    /// broken connection is the failure (see [`Supervisor::advance`]).
    fn on_control_lost(&mut self, group: u16, reason: Option<String>) {
        let worker = &mut self.workers[usize::from(group)];
        worker.control_lost = true;
        if let Some(reason) = reason {
            if !worker.done && !worker.failed && worker.exit.is_none() {
                worker.control_broken = Some((Instant::now(), reason));
            }
        }
    }

    fn kill_unsupervised(&mut self, now: Instant) {
        for worker in self.workers.iter_mut().filter(|w| w.exit.is_none() && !w.failed && !w.done) {
            let Some((since, reason)) = &worker.control_broken else { continue };
            if now.duration_since(*since) < CONTROL_GRACE {
                continue;
            }
            let cause = format!("the control connection broke: {reason}; killed it");
            self.failures.push(Failure::new(FailureKind::Transport, &worker.name, Some(worker.pid), cause));
            worker.failed = true;
            let _ = worker.child.kill();
        }
    }

    /// SIGINT or SIGTERM: the first drains a healthy run, anything else kills.
    fn on_stop_signal(&mut self, signal: i32) {
        let name = signal_name(signal);
        match self.phase {
            Phase::Running if self.stopped_by.is_none() && self.failures.is_empty() => {
                self.stopped_by = Some(name);
                let line = format!("{name}: stopping; draining the pipeline (send it again to kill the workers)");
                self.log(&line);
                self.notice(&line);
                self.narrate(Level::Warn, "run.stopping", "run", &line, Fields::new().with("signal", name));
                stop_source(&mut self.workers, self.stdin_forward.as_ref());
                self.phase = Phase::Draining(Instant::now() + self.mp.stop_timeout);
            }
            Phase::Killed => {}
            _ => {
                let line = format!("{name}: killing every worker");
                self.log(&line);
                self.notice(&line);
                self.narrate(Level::Error, "run.killing", "run", &line, Fields::new().with("signal", name));
                self.interrupted_by = Some(name);
                let cause = format!("stopped by {name}; the workers were killed");
                self.failures.push(Failure::new(FailureKind::LifecycleStop, "(all)", None, cause));
                self.kill_all();
            }
        }
    }

    fn kill_all(&mut self) {
        kill_all(&mut self.workers);
        self.phase = Phase::Killed;
    }

    /// Notes workers that have exited, and judges an exit that came before DONE or FAILED.
    fn reap(&mut self) {
        let mut exited = Vec::new();
        for worker in self.workers.iter_mut().filter(|w| w.exit.is_none()) {
            if let Ok(Some(status)) = worker.child.try_wait() {
                worker.exit = Some(status);
                exited.push(format!("worker `{}` (pid {}) exited: {}", worker.name, worker.pid, describe_exit(status)));
            }
        }
        for line in exited {
            self.log(&line);
        }
        for worker in &mut self.workers {
            let Some(status) = worker.exit else { continue };
            // A worker's last control messages come before its connection closes: wait for
            // the close (if it ever connected) before judging its exit.
            let settled = worker.control_lost || !worker.hello;
            if !settled || worker.done || worker.failed {
                continue;
            }
            worker.failed = true;
            if self.phase == Phase::Killed && status.signal() == Some(libc::SIGKILL) {
                continue; // killed by us; the reason is already a failure
            }
            let (kind, when) = if worker.ready {
                (FailureKind::WorkerFailed, "before finishing")
            } else {
                (FailureKind::LifecycleStart, "before READY")
            };
            let mut cause = match status.signal() {
                Some(signal) => format!("killed by signal {signal} ({}) {when}", signal_name(signal)),
                None => format!("exited with code {} {when}", status.code().unwrap_or(-1)),
            };
            if !worker.hello && !self.rejected_greetings.is_empty() {
                cause.push_str(&format!("; the control port refused: {}", self.rejected_greetings.join("; ")));
            }
            self.failures.push(Failure::new(kind, &worker.name, Some(worker.pid), cause));
        }
    }

    /// Moves the run along: PEERS and START once everyone is there, and the deadlines.
    fn advance(&mut self) {
        let now = Instant::now();
        self.kill_unsupervised(now);
        match self.phase {
            Phase::Starting => self.advance_startup(now),
            Phase::Running => self.check_heartbeats(now),
            Phase::Draining(deadline) if now >= deadline => {
                let live = || self.workers.iter().filter(|w| w.exit.is_none());
                let stuck: Vec<String> = live().map(|w| format!("`{}` (pid {})", w.name, w.pid)).collect();
                // Behind a group that stopped moving, the groups before it block on a full
                // link and the ones after it wait: the one whose counts moved least recently
                // (the first such, in pipeline order) is where the drain is stuck.
                if let Some(first) = live().min_by_key(|w| w.last_progress) {
                    let cause = format!(
                        "the drain did not finish within stop_timeout ({} ms): this group's counts stopped moving first; killed {}",
                        self.mp.stop_timeout.as_millis(),
                        stuck.join(", ")
                    );
                    let failure = Failure::new(FailureKind::LifecycleStop, &first.name, Some(first.pid), cause);
                    self.failures.push(failure);
                    self.interrupted_by = self.stopped_by;
                    self.kill_all();
                }
            }
            Phase::Draining(_) | Phase::Killed => {}
        }
        // The first failure turns the run into a drain: stop the source, let the rest report.
        if !self.failures.is_empty() {
            match self.phase {
                Phase::Starting => self.kill_all(),
                Phase::Running => {
                    stop_source(&mut self.workers, self.stdin_forward.as_ref());
                    self.phase = Phase::Draining(now + self.mp.stop_timeout);
                }
                Phase::Draining(_) | Phase::Killed => {}
            }
        }
    }

    fn advance_startup(&mut self, now: Instant) {
        if self.workers.len() < self.mp.groups.len() {
            return; // a spawn failed; the failure ends the startup
        }
        if !self.peers_sent && self.workers.iter().all(|w| w.hello) {
            for i in 0..self.workers.len() {
                let downstream = self.workers.get(i + 1).and_then(|next| next.data_addr.clone());
                send(&mut self.workers[i], &ToWorker::Peers { downstream });
            }
            self.peers_sent = true;
        }
        if self.sink_open {
            self.log("starting ingress");
            let message = format!("every group is ready ({}); reading the input", self.workers.len());
            self.narrate(Level::Info, "run.ingress", "run", &message, Fields::new());
            for worker in &mut self.workers {
                send(worker, &ToWorker::Start);
            }
            self.phase = Phase::Running;
            self.ingress_started = true;
        } else if self.sink_requested {
            // The sink may take its time (a FIFO waits for its reader); heartbeats say the
            // workers are alive meanwhile.
            self.check_heartbeats(now);
        } else if self.workers.iter().all(|w| w.ready) {
            self.log(&format!("all {} workers ready; the last group creates the sink", self.workers.len()));
            for worker in &mut self.workers {
                // Heartbeats start at READY; silence while the others got ready does not count.
                worker.last_heard = now;
            }
            let last = self.workers.last_mut().expect("there is a worker per group");
            send(last, &ToWorker::OpenSink);
            self.sink_requested = true;
        } else if now >= self.ready_deadline && self.failures.is_empty() {
            let late: Vec<String> =
                self.workers.iter().filter(|w| !w.ready).map(|w| format!("`{}` (pid {})", w.name, w.pid)).collect();
            let first = self.workers.iter().find(|w| !w.ready).expect("one is late");
            let cause = format!(
                "not READY within ready_timeout ({} ms): {} not ready",
                self.mp.ready_timeout.as_millis(),
                late.join(", ")
            );
            let failure = Failure::new(FailureKind::LifecycleReady, &first.name, Some(first.pid), cause);
            self.failures.push(failure);
            self.kill_all();
        }
    }

    fn check_heartbeats(&mut self, now: Instant) {
        let timeout = self.mp.heartbeat_timeout;
        for worker in self.workers.iter_mut().filter(|w| w.exit.is_none() && !w.done && !w.failed) {
            if now.duration_since(worker.last_heard) > timeout {
                let cause = format!("no heartbeat for {} ms (heartbeat_timeout); killed it", timeout.as_millis());
                self.failures.push(Failure::new(FailureKind::WorkerFailed, &worker.name, Some(worker.pid), cause));
                worker.failed = true;
                let _ = worker.child.kill();
            }
        }
    }
}

impl WorkerState {
    fn new(name: &str, child: Child) -> WorkerState {
        WorkerState {
            name: name.into(),
            pid: child.id(),
            child,
            writer: None,
            data_addr: None,
            hello: false,
            ready: false,
            done: false,
            failed: false,
            control_lost: false,
            exit: None,
            last_heard: Instant::now(),
            status: GroupStatus::default(),
            final_status: false,
            control_broken: None,
            last_progress: Instant::now(),
            nodes: Vec::new(),
        }
    }
}

/// The supervisor's stdin, forwarded to the source group's worker after its bootstrap.
/// Closing the pipe gives the worker end of input: the way to stop a source that is blocked
/// reading a quiet stdin.
struct StdinForward {
    pipe: Mutex<Option<ChildStdin>>,
    /// Set to close the pipe: by the forwarder as soon as it can if the event loop could not.
    close: AtomicBool,
}

impl StdinForward {
    /// Closes the pipe now if the forwarder is not in the middle of a write, else as soon as
    /// that write ends. Never blocks: the write may wait on a worker that does not read.
    fn close(&self) {
        self.close.store(true, Ordering::SeqCst);
        if let Ok(mut pipe) = self.pipe.try_lock() {
            pipe.take();
        }
    }
}

fn spawn_worker(
    program: &WorkerProgram,
    boot: &Bootstrap,
    mp: &MultiprocessConfig,
    forward_stdin: Option<Sender<Event>>,
) -> io::Result<(Child, Option<Arc<StdinForward>>)> {
    let mut command = Command::new(&program.program);
    command.args(&program.args).stdin(Stdio::piped()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
    // Its own process group: a terminal's Ctrl-C goes to the supervisor, which drains.
    command.process_group(0);
    if let KeySource::Env(var) = &mp.transport.key {
        command.env_remove(var);
    }
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    if let Err(e) = boot.write_to(&mut stdin) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let Some(events) = forward_stdin else {
        return Ok((child, None));
    };
    let forward = Arc::new(StdinForward { pipe: Mutex::new(Some(stdin)), close: AtomicBool::new(false) });
    let shared = Arc::clone(&forward);
    std::thread::Builder::new().name("stdin-forward".into()).spawn(move || forward_stdin_to(&shared, &events))?;
    Ok((child, Some(forward)))
}

/// Copies the supervisor's stdin into the source worker's pipe until end of input, a read
/// error (reported: the run must not pass a cut stream for a complete one) or a close.
fn forward_stdin_to(forward: &StdinForward, events: &Sender<Event>) {
    let mut buf = vec![0u8; 64 << 10];
    let mut input = io::stdin().lock();
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = events.send(Event::StdinFailed(e.to_string()));
                0
            }
        };
        let Ok(mut pipe) = forward.pipe.lock() else { return };
        let Some(stdin) = pipe.as_mut() else { return };
        if n == 0 || forward.close.load(Ordering::SeqCst) || stdin.write_all(&buf[..n]).is_err() {
            // End of input, a stop, or the worker is gone: close the pipe.
            pipe.take();
            return;
        }
        if forward.close.load(Ordering::SeqCst) {
            pipe.take();
            return;
        }
    }
}

/// Stops the source group: STOP on its control connection, and end of input if it reads the
/// supervisor's stdin (a read blocked on a quiet stdin would not see STOP otherwise).
fn stop_source(workers: &mut [WorkerState], stdin_forward: Option<&Arc<StdinForward>>) {
    if let Some(first) = workers.first_mut() {
        if first.exit.is_none() {
            send(first, &ToWorker::Stop);
        }
    }
    if let Some(forward) = stdin_forward {
        forward.close();
    }
}

/// Connections greeting the control listener at once: one per worker is needed; a local
/// process opening many more cannot make the supervisor start threads without bound.
const MAX_GREETING_CONNECTIONS: usize = 64;

/// Accepts control connections; each must open with a HELLO that verifies under its group's key.
fn spawn_accept_thread(listener: TcpListener, key: TransportKey, mp: &MultiprocessConfig, tx: Sender<Event>) {
    let groups = mp.groups.len();
    let skew_ms = mp.transport.max_clock_skew.as_millis() as u64;
    let hello_timeout = mp.ready_timeout;
    let greeting = Arc::new(AtomicUsize::new(0));
    let _ = std::thread::Builder::new().name("control-accept".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if greeting.fetch_add(1, Ordering::SeqCst) >= MAX_GREETING_CONNECTIONS {
                greeting.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let (key, tx, count) = (key.clone(), tx.clone(), Arc::clone(&greeting));
            let spawned = std::thread::Builder::new().name("control-hello".into()).spawn(move || {
                match greet(stream, &key, groups, skew_ms, hello_timeout) {
                    Ok(hello) => {
                        let _ = tx.send(hello);
                    }
                    Err(Some(reason)) => {
                        let _ = tx.send(Event::GreetingRejected(reason));
                    }
                    Err(None) => {}
                }
                count.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                greeting.fetch_sub(1, Ordering::SeqCst);
            }
        }
    });
}

/// Reads a new control connection's HELLO. `Err(Some(why))` for a greeting in hopline's
/// format that was refused (it may be one of ours, e.g. with a clock far off); `Err(None)` for
/// anything else.
fn greet(
    mut stream: TcpStream,
    key: &TransportKey,
    groups: usize,
    skew_ms: u64,
    timeout: Duration,
) -> Result<Event, Option<String>> {
    stream.set_read_timeout(Some(timeout)).map_err(|_| None)?;
    let _ = stream.set_nodelay(true);
    let (group, prefix) = ControlReader::claimed_sender(&mut stream).map_err(|_| None)?;
    if usize::from(group) >= groups {
        return Err(None);
    }
    let read_half = stream.try_clone().map_err(|_| None)?;
    let mut reader = ControlReader::new(read_half, key.for_link(group, SUPERVISOR), skew_ms).with_prefix(prefix);
    let hello = match reader.recv::<ToSupervisor>() {
        Ok(hello) => hello,
        Err(e @ ControlError::Rejected(_)) => return Err(Some(format!("a greeting claiming group {group}: {e}"))),
        Err(_) => return Err(None),
    };
    let ToSupervisor::Hello { group: said, pid, data_addr } = hello else { return Err(None) };
    if said != group {
        return Err(None);
    }
    stream.set_read_timeout(None).map_err(|_| None)?;
    Ok(Event::Hello { group, pid, data_addr, reader, writer: stream })
}

fn spawn_control_reader(group: u16, mut reader: ControlReader, tx: Sender<Event>) {
    let lost = tx.clone();
    let spawned = std::thread::Builder::new().name("control-read".into()).spawn(move || {
        loop {
            match reader.recv::<ToSupervisor>() {
                Ok(message) => {
                    if tx.send(Event::Control { group, message }).is_err() {
                        return;
                    }
                }
                Err(ControlError::Closed) => {
                    let _ = tx.send(Event::ControlLost { group, reason: None });
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Event::ControlLost { group, reason: Some(e.to_string()) });
                    return;
                }
            }
        }
    });
    if spawned.is_err() {
        let _ = lost.send(Event::ControlLost { group, reason: Some("cannot start its reader thread".into()) });
    }
}

fn spawn_signal_thread(tx: Sender<Event>) {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1]) else { return };
    let _ = std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            if tx.send(Event::Signal(signal)).is_err() {
                return;
            }
        }
    });
}

fn send(worker: &mut WorkerState, message: &ToWorker) {
    if let Some(writer) = worker.writer.as_mut() {
        // A worker that cannot be told anything any more is judged by its exit.
        let _ = writer.send(message);
    }
}

fn kill_all(workers: &mut [WorkerState]) {
    for worker in workers.iter_mut().filter(|w| w.exit.is_none()) {
        let _ = worker.child.kill();
    }
}

fn report_progress(workers: &[WorkerState], progress: &mut dyn FnMut(Progress)) {
    let (Some(first), Some(last)) = (workers.first(), workers.last()) else { return };
    let (bytes_read, bytes_total) = first.status.source_bytes.unwrap_or((0, None));
    progress(Progress {
        records_in: first.status.records_in,
        records_out: last.status.records_out,
        bytes_read,
        bytes_total,
    });
}

fn build_report(
    config: &PipelineConfig,
    workers: &[WorkerState],
    elapsed: Duration,
    stopped_by: Option<&'static str>,
) -> RunReport {
    RunReport {
        app: config.app.clone(),
        scenario: config.scenario.clone(),
        profile: "multiprocess",
        records_in: workers.first().map_or(0, |w| w.status.records_in),
        records_out: workers.last().map_or(0, |w| w.status.records_out),
        elapsed,
        nodes: workers.iter().flat_map(|w| w.nodes.iter().cloned()).collect(),
        groups: workers
            .iter()
            .map(|w| GroupReport { name: w.name.clone(), pid: w.pid, status: w.status.clone() })
            .collect(),
        stopped_by,
        tracing: None,
    }
}

/// The answer to SIGUSR1: where every worker is.
fn status_table(workers: &[WorkerState], elapsed: Duration, phase: Phase) -> String {
    let phase = match phase {
        Phase::Starting => "starting",
        Phase::Running => "running",
        Phase::Draining(_) => "draining",
        Phase::Killed => "killed",
    };
    let mut out = format!("status after {:.3} s: {phase}", elapsed.as_secs_f64());
    for w in workers {
        let state = match (w.exit, w.done, w.failed, w.ready, w.hello) {
            (Some(status), ..) => format!("exited ({})", describe_exit(status)),
            (None, true, ..) => "done".into(),
            (None, _, true, ..) => "failed".into(),
            (None, _, _, true, _) => "running".into(),
            (None, _, _, _, true) => "connected".into(),
            _ => "starting".into(),
        };
        let s = &w.status;
        out.push_str(&format!(
            "\n  {} (pid {}): {state}; {} in, {} out; sent {} frames; last heard {:.1} s ago",
            w.name,
            w.pid,
            thousands(s.records_in),
            thousands(s.records_out),
            thousands(s.frames_sent),
            w.last_heard.elapsed().as_secs_f64()
        ));
    }
    out
}

fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("code {code}"),
        (None, Some(signal)) => format!("signal {signal} ({})", signal_name(signal)),
        _ => "unknown status".into(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        10 => "SIGUSR1",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}
