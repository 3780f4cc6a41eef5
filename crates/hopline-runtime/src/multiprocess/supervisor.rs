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
//! 5. Each worker connects to the next group, opens its source or sink and says READY. If any
//!    worker is not READY within `ready_timeout`, every worker is killed (lifecycle-ready).
//! 6. START: the first group begins reading the source.
//!
//! # Running and stopping
//!
//! Workers send heartbeats with their counters (the progress bar and `status`); a worker
//! silent for `heartbeat_timeout` is killed and reported. The first SIGINT or SIGTERM sends
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
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hopline_model::config::{KeySource, MultiprocessConfig};
use hopline_model::{CorrelationId, NodeReport, PipelineConfig};
use hopline_transport::TransportKey;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

use super::bootstrap::Bootstrap;
use super::control::{ControlReader, ControlWriter, GroupStatus, SUPERVISOR, ToSupervisor, ToWorker};
use super::failure::{Failure, FailureKind};
use crate::report::{GroupReport, RunReport, thousands};
use crate::run::{Progress, RunError};

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
}

enum Event {
    Hello { group: u16, pid: u32, data_addr: Option<String>, reader: ControlReader, writer: TcpStream },
    Control { group: u16, message: ToSupervisor },
    ControlLost { group: u16 },
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

/// Runs a multiprocess config to the end.
pub fn supervise(run: Supervised<'_>, progress: &mut dyn FnMut(Progress)) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let mp = run.config.runtime.multiprocess.as_ref().expect("the caller checked the profile");
    let mut log_fn = run.log;
    let mut log = |line: &str| {
        if let Some(log) = log_fn.as_mut() {
            log(&format!("[{:>8.3}s] {line}", started.elapsed().as_secs_f64()));
        }
    };
    let mut notice_fn = run.notices;
    let mut notice = |text: &str| {
        if let Some(notice) = notice_fn.as_mut() {
            notice(text);
        }
    };
    let names: Vec<&str> = mp.groups.iter().map(|g| g.name.as_str()).collect();
    log(&format!(
        "config validated: {}/{}, {} process groups ({})",
        run.config.app,
        run.config.scenario,
        mp.groups.len(),
        names.join(" → ")
    ));

    let key = match &mp.transport.key {
        KeySource::Generate => TransportKey::generate(),
        KeySource::File(path) => TransportKey::from_file(resolve(run.config_dir, path)),
        KeySource::Env(var) => TransportKey::from_env(var),
    }
    .map_err(RunError::Key)?;
    let listener = TcpListener::bind((mp.host.as_str(), 0)).map_err(|source| RunError::Bind {
        what: "the control listener",
        host: mp.host.clone(),
        source,
    })?;
    let control_addr = listener.local_addr().map_err(|source| RunError::Bind {
        what: "the control listener",
        host: mp.host.clone(),
        source,
    })?;
    log(&format!("control listener bound on {control_addr}"));

    let (tx, rx) = mpsc::channel::<Event>();
    spawn_signal_thread(tx.clone());
    spawn_accept_thread(listener, key.clone(), mp, tx.clone());

    let mut workers: Vec<WorkerState> = Vec::with_capacity(mp.groups.len());
    let mut failures: Vec<Failure> = Vec::new();
    let mut stdin_forward: Option<StdinForward> = None;
    for group in &mp.groups {
        let boot = Bootstrap {
            config_origin: run.config.origin.clone(),
            config_text: run.config_text.to_string(),
            group: group.index,
            key: key.clone(),
            control_addr,
            supervisor_pid: std::process::id(),
            input: run.input.clone(),
            output: run.output.clone(),
            correlation_id: run.correlation_id,
        };
        match spawn_worker(&run.worker, &boot, mp, group.source && run.input == "-") {
            Ok((child, forward)) => {
                if forward.is_some() {
                    stdin_forward = forward;
                }
                log(&format!("worker `{}` spawned (pid {})", group.name, child.id()));
                workers.push(WorkerState::new(&group.name, child));
            }
            Err(e) => {
                failures.push(Failure::new(
                    FailureKind::LifecycleStart,
                    &group.name,
                    None,
                    format!("cannot start a worker ({}): {e}", run.worker.program.display()),
                ));
                break;
            }
        }
    }

    let mut phase = if failures.is_empty() { Phase::Starting } else { Phase::Draining(Instant::now()) };
    let ready_deadline = Instant::now() + mp.ready_timeout;
    let mut stopped_by: Option<&'static str> = None;
    let mut peers_sent = false;

    loop {
        let event = match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => unreachable!("the supervisor holds a sender"),
        };
        match event {
            Some(Event::Hello { group, pid, data_addr, reader, writer }) => {
                let Some(worker) = workers.get_mut(usize::from(group)) else { continue };
                if worker.hello || worker.pid != pid {
                    // Not the process we started for this group (or a second greeting): refuse.
                    continue;
                }
                if let Some(addr) = &data_addr {
                    log(&format!("worker `{}` (pid {pid}) takes frames on {addr}", worker.name));
                } else {
                    log(&format!("worker `{}` (pid {pid}) connected", worker.name));
                }
                worker.hello = true;
                worker.data_addr = data_addr;
                worker.last_heard = Instant::now();
                worker.writer = Some(ControlWriter::new(writer, key.for_link(SUPERVISOR, group), SUPERVISOR));
                spawn_control_reader(group, reader, tx.clone());
            }
            Some(Event::Control { group, message }) => {
                let worker = &mut workers[usize::from(group)];
                worker.last_heard = Instant::now();
                match message {
                    ToSupervisor::Hello { .. } => {}
                    ToSupervisor::Ready => {
                        worker.ready = true;
                        log(&format!("worker `{}` (pid {}) ready", worker.name, worker.pid));
                    }
                    ToSupervisor::Heartbeat { status } => {
                        worker.status = status;
                        report_progress(&workers, progress);
                    }
                    ToSupervisor::Done { status, nodes } => {
                        worker.status = status;
                        worker.nodes = nodes;
                        worker.done = true;
                        log(&format!("worker `{}` (pid {}) done", worker.name, worker.pid));
                    }
                    ToSupervisor::Failed { mut failure, status, nodes } => {
                        worker.status = status;
                        worker.nodes = nodes;
                        worker.failed = true;
                        failure.pid = Some(worker.pid);
                        log(&format!("worker `{}` (pid {}) failed: {failure}", worker.name, worker.pid));
                        failures.push(failure);
                    }
                }
            }
            Some(Event::ControlLost { group }) => workers[usize::from(group)].control_lost = true,
            Some(Event::Signal(SIGUSR1)) => notice(&status_table(&workers, started.elapsed(), phase)),
            Some(Event::Signal(signal)) => {
                let name = signal_name(signal);
                match phase {
                    Phase::Running if stopped_by.is_none() && failures.is_empty() => {
                        stopped_by = Some(name);
                        let line =
                            format!("{name}: stopping; draining the pipeline (send it again to kill the workers)");
                        log(&line);
                        notice(&line);
                        stop_source(&mut workers, stdin_forward.as_ref());
                        phase = Phase::Draining(Instant::now() + mp.stop_timeout);
                    }
                    Phase::Killed => {}
                    _ => {
                        log(&format!("{name}: killing every worker"));
                        notice(&format!("{name}: killing every worker"));
                        failures.push(Failure::new(
                            FailureKind::LifecycleStop,
                            "(all)",
                            None,
                            format!("stopped by {name}; the workers were killed"),
                        ));
                        kill_all(&mut workers);
                        phase = Phase::Killed;
                    }
                }
            }
            None => {}
        }

        // Children that have exited, and what that means.
        for worker in workers.iter_mut().filter(|w| w.exit.is_none()) {
            if let Ok(Some(status)) = worker.child.try_wait() {
                worker.exit = Some(status);
                log(&format!("worker `{}` (pid {}) exited: {}", worker.name, worker.pid, describe_exit(status)));
            }
        }
        for worker in workers.iter_mut() {
            let Some(status) = worker.exit else { continue };
            // A worker's last control messages come before its connection closes: wait for
            // the close (or a moment, if it never connected) before judging its exit.
            let settled = worker.control_lost || !worker.hello;
            if settled && !worker.done && !worker.failed {
                worker.failed = true;
                let kind = if worker.ready { FailureKind::WorkerFailed } else { FailureKind::LifecycleStart };
                let when = if worker.ready { "before finishing" } else { "before READY" };
                let cause = match status.signal() {
                    Some(9) if phase == Phase::Killed => continue,
                    Some(signal) => format!("killed by signal {signal} ({}) {when}", signal_name(signal)),
                    None => format!("exited with code {} {when}", status.code().unwrap_or(-1)),
                };
                failures.push(Failure::new(kind, &worker.name.clone(), Some(worker.pid), cause));
            }
        }

        let now = Instant::now();
        match phase {
            Phase::Starting => {
                if !peers_sent && workers.iter().all(|w| w.hello) {
                    for i in 0..workers.len() {
                        let downstream = workers.get(i + 1).and_then(|next| next.data_addr.clone());
                        send(&mut workers[i], &ToWorker::Peers { downstream });
                    }
                    peers_sent = true;
                }
                if workers.iter().all(|w| w.ready) {
                    log(&format!("all {} workers ready; starting ingress", workers.len()));
                    for worker in &mut workers {
                        send(worker, &ToWorker::Start);
                    }
                    phase = Phase::Running;
                } else if now >= ready_deadline && failures.is_empty() {
                    let late: Vec<String> =
                        workers.iter().filter(|w| !w.ready).map(|w| format!("`{}` (pid {})", w.name, w.pid)).collect();
                    let first = workers.iter().find(|w| !w.ready).expect("one is late");
                    failures.push(Failure::new(
                        FailureKind::LifecycleReady,
                        &first.name.clone(),
                        Some(first.pid),
                        format!(
                            "not READY within ready_timeout ({} ms): {} not ready",
                            mp.ready_timeout.as_millis(),
                            late.join(", ")
                        ),
                    ));
                    kill_all(&mut workers);
                    phase = Phase::Killed;
                }
            }
            Phase::Running => {
                for worker in workers.iter_mut().filter(|w| w.exit.is_none() && !w.done && !w.failed) {
                    if now.duration_since(worker.last_heard) > mp.heartbeat_timeout {
                        failures.push(Failure::new(
                            FailureKind::WorkerFailed,
                            &worker.name,
                            Some(worker.pid),
                            format!(
                                "no heartbeat for {} ms (heartbeat_timeout); killed it",
                                mp.heartbeat_timeout.as_millis()
                            ),
                        ));
                        worker.failed = true;
                        let _ = worker.child.kill();
                    }
                }
            }
            Phase::Draining(deadline) if now >= deadline => {
                let stuck: Vec<String> = workers
                    .iter()
                    .filter(|w| w.exit.is_none())
                    .map(|w| format!("`{}` (pid {})", w.name, w.pid))
                    .collect();
                if !stuck.is_empty() {
                    let first = workers.iter().find(|w| w.exit.is_none()).expect("one is stuck");
                    failures.push(Failure::new(
                        FailureKind::LifecycleStop,
                        &first.name.clone(),
                        Some(first.pid),
                        format!(
                            "did not finish within stop_timeout ({} ms); killed {}",
                            mp.stop_timeout.as_millis(),
                            stuck.join(", ")
                        ),
                    ));
                    kill_all(&mut workers);
                    phase = Phase::Killed;
                }
            }
            Phase::Draining(_) | Phase::Killed => {}
        }
        // The first failure turns a run into a drain: stop the source, let the rest report.
        if !failures.is_empty() && matches!(phase, Phase::Starting | Phase::Running) {
            if phase == Phase::Starting {
                kill_all(&mut workers);
                phase = Phase::Killed;
            } else {
                stop_source(&mut workers, stdin_forward.as_ref());
                phase = Phase::Draining(now + mp.stop_timeout);
            }
        }
        if workers.iter().all(|w| w.exit.is_some() && (w.control_lost || !w.hello)) && phase != Phase::Starting {
            break;
        }
        if workers.is_empty() {
            break;
        }
        if phase == Phase::Starting && workers.iter().all(|w| w.exit.is_some()) {
            break;
        }
    }
    log("every worker has exited");

    let report = build_report(run.config, &workers, started.elapsed(), stopped_by);
    match Failure::root_index(&failures) {
        None => Ok(report),
        Some(root) => {
            let root = failures.remove(root);
            Err(RunError::Multiprocess(Box::new(MultiprocessFailure { root, consequences: failures, report })))
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
            nodes: Vec::new(),
        }
    }
}

fn resolve(base: &Path, written: &str) -> PathBuf {
    let path = Path::new(written);
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

/// The supervisor's stdin, forwarded to the source group's worker after its bootstrap.
/// Closing it (taking the pipe) gives the worker end of input: the way to stop a source that
/// is blocked reading.
type StdinForward = Arc<Mutex<Option<ChildStdin>>>;

fn spawn_worker(
    program: &WorkerProgram,
    boot: &Bootstrap,
    mp: &MultiprocessConfig,
    forward_stdin: bool,
) -> io::Result<(Child, Option<StdinForward>)> {
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
    if !forward_stdin {
        return Ok((child, None));
    }
    let pipe: StdinForward = Arc::new(Mutex::new(Some(stdin)));
    let forward = Arc::clone(&pipe);
    std::thread::Builder::new().name("stdin-forward".into()).spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut input = io::stdin().lock();
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let mut pipe = forward.lock().expect("stdin pipe lock");
            let Some(stdin) = pipe.as_mut() else { return };
            if n == 0 || stdin.write_all(&buf[..n]).is_err() {
                // End of input (or the worker is gone): close the pipe.
                pipe.take();
                return;
            }
        }
    })?;
    Ok((child, Some(pipe)))
}

/// Stops the source group: STOP on its control connection, and end of input if it reads the
/// supervisor's stdin (a read blocked on a quiet stdin would not see STOP otherwise).
fn stop_source(workers: &mut [WorkerState], stdin_forward: Option<&StdinForward>) {
    if let Some(first) = workers.first_mut() {
        if first.exit.is_none() {
            send(first, &ToWorker::Stop);
        }
    }
    if let Some(pipe) = stdin_forward {
        if let Ok(mut pipe) = pipe.lock() {
            pipe.take();
        }
    }
}

/// Accepts control connections; each must open with a HELLO that verifies under its group's key.
fn spawn_accept_thread(listener: TcpListener, key: TransportKey, mp: &MultiprocessConfig, tx: Sender<Event>) {
    let groups = mp.groups.len();
    let skew_ms = mp.transport.max_clock_skew.as_millis() as u64;
    let hello_timeout = mp.ready_timeout;
    let _ = std::thread::Builder::new().name("control-accept".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let key = key.clone();
            let tx = tx.clone();
            let _ = std::thread::Builder::new().name("control-hello".into()).spawn(move || {
                let _ = stream.set_read_timeout(Some(hello_timeout));
                let _ = stream.set_nodelay(true);
                let Ok((group, prefix)) = ControlReader::claimed_sender(&mut stream) else { return };
                if usize::from(group) >= groups {
                    return;
                }
                let Ok(read_half) = stream.try_clone() else { return };
                let mut reader =
                    ControlReader::new(read_half, key.for_link(group, SUPERVISOR), skew_ms).with_prefix(prefix);
                let Ok(ToSupervisor::Hello { group: said, pid, data_addr }) = reader.recv::<ToSupervisor>() else {
                    return;
                };
                if said != group {
                    return;
                }
                let _ = stream.set_read_timeout(None);
                let _ = tx.send(Event::Hello { group, pid, data_addr, reader, writer: stream });
            });
        }
    });
}

fn spawn_control_reader(group: u16, mut reader: ControlReader, tx: Sender<Event>) {
    let _ = std::thread::Builder::new().name("control-read".into()).spawn(move || {
        loop {
            match reader.recv::<ToSupervisor>() {
                Ok(message) => {
                    if tx.send(Event::Control { group, message }).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    let _ = tx.send(Event::ControlLost { group });
                    return;
                }
            }
        }
    });
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
