//! The multiprocess profile with real processes: the `hopline` supervisor, its workers, real
//! TCP links on ephemeral ports, real signals.
//!
//! Every run is held by a [`Run`] guard that SIGKILLs the supervisor and every worker it
//! started (their pids come from the `--verbose` lifecycle log) when the test ends, panics
//! included. Waits poll for a condition with a deadline; none sleeps for a fixed time to let
//! something happen.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use hopline_transport::{FrameKind, TransportKey, encode_frame};

const PATIENCE: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/fund_load").join(name)
}

fn mp_config(scenario: &str) -> PathBuf {
    repo().join("pipelines/fund_load/multiprocess").join(format!("{scenario}.yml"))
}

fn memory_config(scenario: &str) -> PathBuf {
    repo().join("pipelines/fund_load").join(format!("{scenario}.yml"))
}

fn hopline_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("hopline")
}

/// The bytes read so far, and whether the stream has ended.
type Stream = (Vec<u8>, bool);

/// Text that grows while a child writes it, readable at any time.
#[derive(Clone, Default)]
struct Captured(Arc<(Mutex<Stream>, Condvar)>);

impl Captured {
    fn spawn_reader(mut from: impl Read + Send + 'static) -> Captured {
        let captured = Captured::default();
        let sink = captured.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                let n = from.read(&mut chunk).unwrap_or(0);
                let (state, changed) = &*sink.0;
                let mut state = state.lock().unwrap();
                if n == 0 {
                    state.1 = true; // end of stream: every writer has closed it
                    changed.notify_all();
                    return;
                }
                state.0.extend_from_slice(&chunk[..n]);
                changed.notify_all();
            }
        });
        captured
    }

    /// Waits until the stream has ended (every process holding it has exited).
    fn wait_closed(&self) {
        let deadline = Instant::now() + PATIENCE;
        let (state, changed) = &*self.0;
        let mut guard = state.lock().unwrap();
        while !guard.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the stream never ended");
            guard = changed.wait_timeout(guard, left).unwrap().0;
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.0.0.lock().unwrap().0.clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Waits until `ready` holds for the text so far, or panics after [`PATIENCE`].
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let (state, changed) = &*self.0;
        let mut guard = state.lock().unwrap();
        loop {
            let text = String::from_utf8_lossy(&guard.0).into_owned();
            if ready(&text) {
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}; so far:\n{text}");
            guard = changed.wait_timeout(guard, left.min(Duration::from_millis(200))).unwrap().0;
        }
    }
}

/// A running `hopline run -v`, killed with all its workers when dropped.
struct Run {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Captured,
    stderr: Captured,
}

impl Run {
    /// Starts `hopline run -v CONFIG ARGS...`; with `feed_stdin`, the test writes its stdin.
    fn start(config: &Path, args: &[&str], feed_stdin: bool) -> Run {
        let mut child = Command::new(hopline_bin())
            .arg("run")
            .arg("-v")
            .arg(config)
            .args(args)
            .stdin(if feed_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hopline");
        let stdout = Captured::spawn_reader(child.stdout.take().unwrap());
        let stderr = Captured::spawn_reader(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        Run { child, stdin, stdout, stderr }
    }

    fn write_input(&mut self, bytes: &[u8]) {
        self.stdin.as_mut().expect("stdin is fed").write_all(bytes).unwrap();
        self.stdin.as_mut().unwrap().flush().unwrap();
    }

    fn close_input(&mut self) {
        self.stdin.take();
    }

    fn wait_started(&self) {
        self.stderr.wait_for("all workers ready", |t| t.contains("starting ingress"));
    }

    /// The pid of group `group`'s worker, from the lifecycle log.
    fn worker_pid(&self, group: &str) -> u32 {
        let needle = format!("worker `{group}` spawned (pid ");
        let text = self.stderr.wait_for(&needle, |t| t.contains(&needle));
        let rest = &text[text.find(&needle).unwrap() + needle.len()..];
        rest[..rest.find(')').unwrap()].parse().unwrap()
    }

    fn worker_pids(&self) -> Vec<u32> {
        self.stderr
            .text()
            .lines()
            .filter_map(|line| {
                let at = line.find("spawned (pid ")? + "spawned (pid ".len();
                line[at..].split(')').next()?.parse().ok()
            })
            .collect()
    }

    /// Where group `group` takes frames, from the lifecycle log.
    fn data_addr(&self, group: &str) -> SocketAddr {
        let needle = format!("worker `{group}` (pid ");
        let text = self
            .stderr
            .wait_for("a data port", |t| t.lines().any(|l| l.contains(&needle) && l.contains("takes frames on ")));
        let line = text.lines().find(|l| l.contains(&needle) && l.contains("takes frames on ")).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    fn wait(&mut self) -> ExitStatus {
        self.close_input();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The readers take what the pipes still hold, to their end.
                self.stdout.wait_closed();
                self.stderr.wait_closed();
                return status;
            }
            assert!(Instant::now() < deadline, "hopline did not exit; stderr:\n{}", self.stderr.text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we started and a signal number; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for pid in self.worker_pids() {
            // Only a process that is still this supervisor's child: a pid may have been reused.
            if parent_of(pid) == Some(self.child.id()) {
                // SAFETY: as above.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parent pid of `pid`, if it exists.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()
}

/// Serialises the tests that load the machine most with those whose timing margins are
/// tightest, so that a slow 2-core runner does not turn one into the other's failure.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

fn assert_all_gone(pids: &[u32]) {
    assert!(!pids.is_empty(), "no worker pids were logged");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            Instant::now() < deadline,
            "workers still running: {:?}",
            pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn memory_output(scenario: &str, input: &Path) -> Vec<u8> {
    let output = Command::new(hopline_bin())
        .args(["run", "-q"])
        .arg(memory_config(scenario))
        .arg("-i")
        .arg(input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Writes a config file into `dir` and returns its path.
fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A probe pipeline over three groups; `fault` is the fault node's params, in group `b`.
fn probe_config(dir: &Path, fault: &str, extra_runtime: &str) -> PathBuf {
    let input = dir.join("input.ndjson");
    let lines: String = (1..=20).map(|i| format!("{{\"line\":{i}}}\n")).collect();
    std::fs::write(&input, lines).unwrap();
    let text = format!(
        "app: probe\nscenario: drill\nruntime:\n  profile: multiprocess\n  batch_size: 1\n{extra_runtime}  process_groups:\n    - {{ name: a, nodes: [pass] }}\n    - {{ name: b, nodes: [fault] }}\n    - {{ name: c, nodes: [] }}\nsource: {{ kind: ndjson, path: input.ndjson, group: a }}\nsink: {{ kind: ndjson, path: \"-\", group: c }}\nnodes:\n  - kind: pass\n  - kind: fault\n    params: {fault}\n"
    );
    write_config(dir, "probe.yml", &text)
}

/// Runs `config` to its end, which must be a failure (exit 1); returns the run and its stderr.
fn run_to_failure(config: &Path, args: &[&str]) -> (Run, String) {
    let mut run = Run::start(config, args, false);
    let status = run.wait();
    let log = run.stderr.text();
    assert_eq!(status.code(), Some(1), "{log}");
    (run, log)
}

#[test]
fn fixture_output_is_byte_identical_to_the_memory_profile_for_both_scenarios() {
    for (scenario, expected) in [("baseline", "output.txt"), ("exp_mp", "output_exp_mp.txt")] {
        let mut run = Run::start(&mp_config(scenario), &[], false);
        let status = run.wait();
        assert!(status.success(), "{scenario}: {}", run.stderr.text());
        assert_eq!(run.stdout.bytes(), std::fs::read(fixture(expected)).unwrap(), "{scenario}");
        let summary = run.stderr.text();
        assert!(summary.contains("(multiprocess profile): 1,000 records in, 1,000 out"), "{summary}");
        assert!(summary.contains("ingest (pid "), "{summary}");
        assert!(summary.contains("transport rejects: none"), "{summary}");
    }
}

#[test]
fn a_million_generated_records_give_the_memory_profiles_bytes_for_both_scenarios() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let status = Command::new(hopline_bin())
        .args(["generate", "fund_load", "-n", "1000000", "--seed", "7", "-o"])
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());
    for scenario in ["baseline", "exp_mp"] {
        let expected = memory_output(scenario, &input);
        let out = dir.path().join(format!("{scenario}.out"));
        let mut run =
            Run::start(&mp_config(scenario), &["-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()], false);
        let status = run.wait();
        assert!(status.success(), "{scenario}: {}", run.stderr.text());
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got.len(), expected.len(), "{scenario}: output sizes differ");
        assert!(got == expected, "{scenario}: outputs differ");
        assert!(run.stderr.text().contains("1,000,000 records in, 1,000,000 out"), "{}", run.stderr.text());
    }
}

#[test]
fn startup_follows_the_documented_order() {
    let mut run = Run::start(&mp_config("baseline"), &[], false);
    assert!(run.wait().success(), "{}", run.stderr.text());
    let log = run.stderr.text();
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("no `{needle}` in:\n{log}"));
    let validated = at("config validated");
    let bound = at("control listener bound on 127.0.0.1:");
    let spawned: Vec<usize> =
        ["ingest", "policy", "egress"].iter().map(|g| at(&format!("worker `{g}` spawned"))).collect();
    let ready: Vec<usize> = ["ingest", "policy", "egress"].iter().map(|g| at(&format!("`{g}` (pid"))).collect();
    let all_ready = at("all 3 workers ready; the last group creates the sink");
    let sink_open = at("worker `egress` (pid");
    let ingress = at("starting ingress");
    assert!(all_ready < ingress && sink_open < ingress && log.contains("opened the sink"), "{log}");
    assert!(validated < bound && bound < spawned[0], "{log}");
    assert!(spawned.windows(2).all(|w| w[0] < w[1]), "workers start in pipeline order:\n{log}");
    assert!(spawned[2] < ready.iter().copied().min().unwrap(), "{log}");
    for g in ["ingest", "policy", "egress"] {
        assert!(at(&format!("worker `{g}` (pid")) < ingress, "{log}");
        let ready_line = log.lines().position(|l| l.contains(&format!("`{g}`")) && l.ends_with(" ready")).unwrap();
        let ingress_line = log.lines().position(|l| l.contains("starting ingress")).unwrap();
        assert!(ready_line < ingress_line, "{g} is READY before ingress:\n{log}");
    }
}

#[test]
fn a_worker_killed_mid_run_is_reported_with_its_group_and_pid_and_nothing_is_left() {
    let mut run = Run::start(&mp_config("baseline"), &["-i", "-"], true);
    run.wait_started();
    let input = std::fs::read(fixture("input.txt")).unwrap();
    run.write_input(&input);
    // Records have crossed every group: the run is mid-stream (stdin is still open).
    run.stdout.wait_for("records at the sink", |t| t.lines().count() >= 1000);
    let pids = run.worker_pids();
    let policy = run.worker_pid("policy");
    // SAFETY: kill(2) with a pid this test's run started.
    unsafe { libc::kill(policy as i32, libc::SIGKILL) };
    let status = run.wait();
    let log = run.stderr.text();
    assert_eq!(status.code(), Some(1), "{log}");
    let root =
        format!("hopline: worker-failed: process group `policy` (worker pid {policy}): killed by signal 9 (SIGKILL)");
    assert!(log.contains(&root), "{log}");
    assert!(log.contains("1,000 records reached the sink before the run stopped"), "{log}");
    assert_eq!(run.stdout.bytes(), std::fs::read(fixture("output.txt")).unwrap(), "what reached the sink is flushed");
    assert_all_gone(&pids);
}

#[test]
fn a_node_panic_reaches_the_supervisor_with_its_message_and_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = probe_config(dir.path(), "{ at: 3, action: panic }", "");
    let (run, log) = run_to_failure(&config, &[]);
    let pid = run.worker_pid("b");
    let root = format!(
        "hopline: execution: process group `b` (worker pid {pid}), node `fault`: panicked: probe panic at event 3"
    );
    assert!(log.contains(&root), "{log}");
    assert!(log.contains("while processing events 3 to 3"), "{log}");
    assert!(
        !log.contains("thread 'main' panicked"),
        "the supervisor reports the panic, the worker does not print it:\n{log}"
    );
    assert_eq!(run.stdout.text(), "{\"line\":1}\n{\"line\":2}\n", "records before the fault reached the sink");
    assert!(log.contains("2 records reached the sink before the run stopped"), "{log}");
    assert_all_gone(&run.worker_pids());
}

#[test]
fn a_node_error_names_the_node_and_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let config = probe_config(dir.path(), "{ at: 4, action: error }", "");
    let (run, log) = run_to_failure(&config, &[]);
    let pid = run.worker_pid("b");
    assert!(
        log.contains(&format!(
            "execution: process group `b` (worker pid {pid}), node `fault`, event 4: probe fault at event 4"
        )),
        "{log}"
    );
    assert_eq!(run.stdout.text().lines().count(), 3, "{log}");
}

#[test]
fn a_worker_exiting_early_is_a_worker_failure_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let config = probe_config(dir.path(), "{ at: 2, action: exit, code: 7 }", "");
    let (run, log) = run_to_failure(&config, &[]);
    let pid = run.worker_pid("b");
    assert!(
        log.contains(&format!(
            "worker-failed: process group `b` (worker pid {pid}): exited with code 7 before finishing"
        )),
        "{log}"
    );
    assert_all_gone(&run.worker_pids());
}

#[test]
fn a_worker_that_is_not_ready_in_time_is_a_lifecycle_ready_failure() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    // Opening a FIFO for reading blocks until someone writes to it: the source group never
    // gets READY.
    let fifo = dir.path().join("in.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let config = probe_config(dir.path(), "{ at: 100, action: error }", "  ready_timeout: 1s\n");
    let (run, log) = run_to_failure(&config, &["-i", fifo.to_str().unwrap()]);
    let pid = run.worker_pid("a");
    assert!(
        log.contains(&format!(
            "lifecycle-ready: process group `a` (worker pid {pid}): not READY within ready_timeout (1000 ms)"
        )),
        "{log}"
    );
    assert_all_gone(&run.worker_pids());
}

#[test]
fn killing_the_supervisor_leaves_no_worker_running() {
    let run = Run::start(&mp_config("baseline"), &["-i", "-"], true);
    run.wait_started();
    let pids = run.worker_pids();
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| alive(p)));
    run.signal(libc::SIGKILL);
    assert_all_gone(&pids);
}

#[test]
fn sigterm_drains_every_record_read_and_exits_143() {
    let mut run = Run::start(&mp_config("baseline"), &["-i", "-"], true);
    run.wait_started();
    run.write_input(&std::fs::read(fixture("input.txt")).unwrap());
    run.stdout.wait_for("records at the sink", |t| t.lines().count() >= 1000);
    let pids = run.worker_pids();
    run.signal(libc::SIGTERM);
    let status = run.wait();
    let log = run.stderr.text();
    assert_eq!(status.code(), Some(143), "{log}");
    assert!(log.contains("SIGTERM: stopping; draining"), "{log}");
    assert!(log.contains("stopped early by SIGTERM: drained"), "{log}");
    assert_eq!(run.stdout.bytes(), std::fs::read(fixture("output.txt")).unwrap());
    assert_all_gone(&pids);
}

#[test]
fn a_second_sigint_kills_a_run_that_cannot_drain() {
    let dir = tempfile::tempdir().unwrap();
    let config = probe_config(dir.path(), "{ at: 2, action: stall, stall_ms: 60000 }", "");
    let mut run = Run::start(&config, &[], false);
    run.stdout.wait_for("the first record", |t| t.lines().count() >= 1);
    let pids = run.worker_pids();
    run.signal(libc::SIGINT);
    run.stderr.wait_for("the drain to begin", |t| t.contains("SIGINT: stopping; draining"));
    run.signal(libc::SIGINT);
    let status = run.wait();
    let log = run.stderr.text();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("SIGINT: killing every worker"), "{log}");
    assert!(log.contains("stopped by SIGINT; the workers were killed"), "{log}");
    assert_all_gone(&pids);
}

/// One hostile connection: send `bytes`, half-close, and wait for the worker to close its
/// side (so it has read and judged everything).
fn send_hostile(addr: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn data_frame(sender: u16, sequence: u64, timestamp_ms: u64, key: &TransportKey) -> Vec<u8> {
    let frame = hopline_transport::Frame {
        kind: FrameKind::Data,
        sender,
        sequence,
        timestamp_ms,
        envelopes: Vec::new(),
        body: bytes::Bytes::new(),
    };
    let mut out = BytesMut::new();
    encode_frame(&frame, key, &mut out).unwrap();
    out.to_vec()
}

#[test]
fn hostile_frames_to_a_live_port_are_rejected_counted_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key_bytes = [0x5au8; 32];
    let key_hex: String = key_bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(dir.path().join("run.key"), format!("{key_hex}\n")).unwrap();
    let text = std::fs::read_to_string(mp_config("baseline"))
        .unwrap()
        .replace("  batch_size: 1024\n", "  batch_size: 100\n  transport:\n    key: { file: run.key }\n");
    let config = write_config(dir.path(), "baseline.yml", &text);
    let mut run = Run::start(&config, &["-i", "-"], true);
    run.wait_started();
    let input = std::fs::read(fixture("input.txt")).unwrap();
    let half = input.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(499).unwrap().0 + 1;
    run.write_input(&input[..half]);
    // Frames 1.. from ingest have reached policy (and beyond): sequence 1 is spent.
    run.stdout.wait_for("the first half at the sink", |t| t.lines().count() >= 500);

    let policy = run.data_addr("policy");
    // The run's keys derive from the configured key and the run nonce (in the -v log).
    let log = run.stderr.text();
    let nonce_hex = log.split("run nonce ").nth(1).unwrap().split(' ').next().unwrap();
    let nonce: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&nonce_hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    let link_key = TransportKey::from_bytes(key_bytes).for_run(&nonce.try_into().unwrap()).for_link(0, 1);
    let stranger_key = TransportKey::from_bytes([0x11; 32]);
    // Forged: signed with a key that is not the link's.
    send_hostile(policy, &data_frame(0, 5_000_000, now_ms(), &stranger_key));
    // Expired: the right key, a timestamp an hour old.
    send_hostile(policy, &data_frame(0, 6_000_000, now_ms() - 3_600_000, &link_key));
    // Replayed: the right key, a sequence the real link already used.
    send_hostile(policy, &data_frame(0, 1, now_ms(), &link_key));
    // Oversized: a length prefix far past max_frame_bytes.
    send_hostile(policy, &[0xff, 0xff, 0xff, 0xf0, 0xa1, 0x01]);
    // Truncated: a valid frame cut short by the connection closing.
    let whole = data_frame(0, 7_000_000, now_ms(), &link_key);
    send_hostile(policy, &whole[..whole.len() - 10]);

    run.write_input(&input[half..]);
    let status = run.wait();
    let log = run.stderr.text();
    assert!(status.success(), "{log}");
    assert_eq!(run.stdout.bytes(), std::fs::read(fixture("output.txt")).unwrap(), "the run's output is unaffected");
    assert!(log.contains("transport rejects: 5 ("), "{log}");
    for reason in ["1 oversized", "1 expired", "1 bad signature", "1 replayed", "1 truncated"] {
        let rejects = log.lines().find(|l| l.contains("transport rejects")).unwrap();
        assert!(rejects.contains(reason), "{reason} missing in: {rejects}");
    }
}

#[test]
fn the_transport_key_is_in_no_worker_argv_or_environment() {
    let key_hex = "ab".repeat(32);
    let text = std::fs::read_to_string(mp_config("baseline"))
        .unwrap()
        .replace("  batch_size: 1024\n", "  batch_size: 1024\n  transport:\n    key: { env: HOPLINE_TEST_KEY }\n")
        .replace("../../../tests/fixtures", &repo().join("tests/fixtures").display().to_string());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "baseline.yml", &text);
    let mut child = Command::new(hopline_bin());
    child.arg("run").arg("-v").arg(&config).args(["-i", "-"]).env("HOPLINE_TEST_KEY", &key_hex);
    let mut run = {
        let mut c = child.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = Captured::spawn_reader(c.stdout.take().unwrap());
        let stderr = Captured::spawn_reader(c.stderr.take().unwrap());
        Run { stdin: c.stdin.take(), child: c, stdout, stderr }
    };
    run.wait_started();
    let pids = run.worker_pids();
    assert_eq!(pids.len(), 3);
    for pid in &pids {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(!environ.contains("HOPLINE_TEST_KEY"), "worker {pid} inherited the key variable");
        assert!(!environ.contains(&key_hex));
        assert!(!String::from_utf8_lossy(&cmdline).contains(&key_hex));
    }
    run.write_input(&std::fs::read(fixture("input.txt")).unwrap());
    let status = run.wait();
    assert!(status.success(), "{}", run.stderr.text());
    assert!(!run.stderr.text().contains(&key_hex));
    assert_eq!(run.stdout.bytes(), std::fs::read(fixture("output.txt")).unwrap());
}

#[test]
fn a_bad_placement_is_refused_before_any_worker_starts() {
    let text = std::fs::read_to_string(mp_config("baseline"))
        .unwrap()
        .replace("nodes: [features, policies]", "nodes: [features, policies, parse]");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "bad.yml", &text);
    let output = Command::new(hopline_bin()).arg("run").arg("-v").arg(&config).output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(log.contains("bad.yml:"), "{log}");
    assert!(log.contains("runtime.process_groups[1].nodes[2]"), "{log}");
    assert!(!log.contains("spawned"), "{log}");
}

#[test]
fn lines_of_stdin_reach_the_sink_through_every_group() {
    let mut run = Run::start(&mp_config("exp_mp"), &["-i", "-"], true);
    run.wait_started();
    let input = std::fs::read(fixture("input.txt")).unwrap();
    for chunk in input.chunks(7_000) {
        run.write_input(chunk);
    }
    let status = run.wait();
    assert!(status.success(), "{}", run.stderr.text());
    assert_eq!(run.stdout.bytes(), std::fs::read(fixture("output_exp_mp.txt")).unwrap());
}

#[test]
fn sigusr1_prints_every_workers_status_and_the_run_goes_on() {
    let mut run = Run::start(&mp_config("baseline"), &["-i", "-"], true);
    run.wait_started();
    run.signal(libc::SIGUSR1);
    let text = run.stderr.wait_for("a status table", |t| t.contains("status after") && t.contains("egress (pid"));
    assert!(text.contains(": running"), "{text}");
    for group in ["ingest", "policy", "egress"] {
        let pid = run.worker_pid(group);
        assert!(text.contains(&format!("  {group} (pid {pid}): running; ")), "{text}");
    }
    run.write_input(&std::fs::read(fixture("input.txt")).unwrap());
    assert!(run.wait().success(), "{}", run.stderr.text());
    assert_eq!(run.stdout.bytes(), std::fs::read(fixture("output.txt")).unwrap());
}

#[test]
fn a_worker_that_stops_answering_is_killed_after_the_heartbeat_timeout() {
    let _heavy = heavy();
    let text = std::fs::read_to_string(mp_config("baseline"))
        .unwrap()
        .replace("  batch_size: 1024\n", "  batch_size: 1024\n  heartbeat_interval: 100ms\n  heartbeat_timeout: 2s\n");
    let text = text.replace("../../../tests/fixtures", &repo().join("tests/fixtures").display().to_string());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "baseline.yml", &text);
    let mut run = Run::start(&config, &["-i", "-"], true);
    run.wait_started();
    let pids = run.worker_pids();
    let policy = run.worker_pid("policy");
    // SAFETY: kill(2) with a pid this test's run started; SIGSTOP freezes it, heartbeats stop.
    unsafe { libc::kill(policy as i32, libc::SIGSTOP) };
    let status = run.wait();
    let log = run.stderr.text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "worker-failed: process group `policy` (worker pid {policy}): no heartbeat for 2000 ms (heartbeat_timeout); killed it"
        )),
        "{log}"
    );
    assert_all_gone(&pids);
}

#[test]
fn check_shows_each_process_group_and_what_it_runs() {
    let output = Command::new(hopline_bin()).arg("check").arg(mp_config("baseline")).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("multiprocess, 3 process groups:"), "{text}");
    assert!(text.contains("    ingest: source → parse → time_keys → idempotency\n"), "{text}");
    assert!(text.contains("    policy: features → policies\n"), "{text}");
    assert!(text.contains("    egress: format → sink\n"), "{text}");
}

#[test]
fn a_missing_input_fails_the_start_naming_the_file_once() {
    let (run, log) = run_to_failure(&mp_config("baseline"), &["-i", "/nonexistent/input.txt"]);
    let pid = run.worker_pid("ingest");
    let root = format!(
        "hopline: execution: process group `ingest` (worker pid {pid}), node `source`: cannot read /nonexistent/input.txt"
    );
    assert!(log.contains(&root), "{log}");
    let said: Vec<&str> =
        log.lines().filter(|l| !l.starts_with("hopline: [") && l.contains("/nonexistent/input.txt")).collect();
    assert_eq!(said.len(), 1, "said once, by the supervisor (apart from the -v log):\n{log}");
    assert!(!log.contains("records reached the sink"), "nothing was read, no summary:\n{log}");
    assert_all_gone(&run.worker_pids());
}

#[test]
fn records_reach_stdout_while_stdin_is_still_open_in_both_profiles() {
    for config in [memory_config("baseline"), mp_config("baseline")] {
        let mut run = Run::start(&config, &["-i", "-"], true);
        let input = std::fs::read(fixture("input.txt")).unwrap();
        let ten = input.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(9).unwrap().0 + 1;
        run.write_input(&input[..ten]);
        // Ten lines in, stdin open: their ten decisions come out now, not at end of input.
        run.stdout.wait_for("ten decisions", |t| t.lines().count() == 10);
        run.write_input(&input[ten..]);
        assert!(run.wait().success(), "{}", run.stderr.text());
        assert_eq!(run.stdout.bytes(), std::fs::read(fixture("output.txt")).unwrap(), "{}", config.display());
    }
}

/// The shipped multiprocess config with its groups replaced by `groups` (YAML list items)
/// and the adapters placed in `first` and `last`.
fn regrouped(scenario: &str, groups: &str, first: &str, last: &str) -> String {
    let text = std::fs::read_to_string(mp_config(scenario)).unwrap();
    let start = text.find("  process_groups:\n").unwrap();
    let end = text.find("\nsource:").unwrap();
    let text = format!("{}  process_groups:\n{groups}{}", &text[..start], &text[end..]);
    text.replace("group: ingest", &format!("group: {first}"))
        .replace("group: egress", &format!("group: {last}"))
        .replace("../../../tests/fixtures", &repo().join("tests/fixtures").display().to_string())
}

#[test]
fn any_split_gives_the_same_bytes_one_group_or_one_group_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let one = "    - { name: all, nodes: [parse, time_keys, idempotency, features, policies, format] }\n";
    let each: String = ["parse", "time_keys", "idempotency", "features", "policies", "format"]
        .iter()
        .map(|n| format!("    - {{ name: g-{n}, nodes: [{n}] }}\n"))
        .collect();
    let apart = "    - { name: reader, nodes: [] }\n    - { name: work, nodes: [parse, time_keys, idempotency, features, policies, format] }\n    - { name: writer, nodes: [] }\n";
    for (scenario, expected) in [("baseline", "output.txt"), ("exp_mp", "output_exp_mp.txt")] {
        for (name, groups, first, last) in [
            ("one", one, "all", "all"),
            ("each", each.as_str(), "g-parse", "g-format"),
            ("apart", apart, "reader", "writer"),
        ] {
            let config =
                write_config(dir.path(), &format!("{scenario}-{name}.yml"), &regrouped(scenario, groups, first, last));
            let mut run = Run::start(&config, &[], false);
            assert!(run.wait().success(), "{scenario}/{name}: {}", run.stderr.text());
            assert_eq!(run.stdout.bytes(), std::fs::read(fixture(expected)).unwrap(), "{scenario}/{name}");
        }
    }
}

#[test]
fn an_aborting_worker_is_reported_with_its_signal() {
    let dir = tempfile::tempdir().unwrap();
    let config = probe_config(dir.path(), "{ at: 2, action: abort }", "");
    let (run, log) = run_to_failure(&config, &[]);
    let pid = run.worker_pid("b");
    assert!(
        log.contains(&format!(
            "worker-failed: process group `b` (worker pid {pid}): killed by signal 6 (SIGABRT) before finishing"
        )),
        "{log}"
    );
}

#[test]
fn frames_that_wait_behind_a_slow_group_longer_than_the_clock_window_still_count() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (1..=4000).map(|i| format!("{{\"line\":{i}}}\n")).collect();
    std::fs::write(dir.path().join("input.ndjson"), &lines).unwrap();
    // The last group takes about 4 s for what the first sends at once; frames are older than
    // max_clock_skew (2 s) when they are read.
    let text = "app: probe\nscenario: slow\nruntime:\n  profile: multiprocess\n  batch_size: 1\n  transport: { max_clock_skew: 2s }\n  process_groups:\n    - { name: a, nodes: [pass] }\n    - { name: c, nodes: [delay] }\nsource: { kind: ndjson, path: input.ndjson, group: a }\nsink: { kind: ndjson, path: \"-\", group: c }\nnodes:\n  - kind: pass\n  - kind: delay\n    params: { every_ms: 1 }\n";
    let config = write_config(dir.path(), "slow.yml", text);
    let mut run = Run::start(&config, &[], false);
    let status = run.wait();
    assert!(status.success(), "{}", run.stderr.text());
    assert_eq!(run.stdout.text(), lines);
}

#[test]
fn a_missing_input_leaves_an_existing_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    std::fs::write(&out, "precious\n").unwrap();
    let (_run, _log) =
        run_to_failure(&mp_config("baseline"), &["-i", "/nonexistent/input.txt", "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious\n");
}

#[test]
fn a_second_sigint_kills_even_while_stdin_is_pushing_into_a_stalled_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let config = probe_config(dir.path(), "{ at: 2, action: stall, stall_ms: 60000 }", "");
    let mut run = Run::start(&config, &["-i", "-"], true);
    run.wait_started();
    // Keep writing until the pipes fill up behind the stalled group.
    let mut stdin = run.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = b"{\"line\":0}\n".repeat(4096);
        while stdin.write_all(&line).is_ok() {}
    });
    run.stdout.wait_for("the first record", |t| t.lines().count() >= 1);
    let pids = run.worker_pids();
    run.signal(libc::SIGINT);
    run.stderr.wait_for("the drain to begin", |t| t.contains("SIGINT: stopping; draining"));
    run.signal(libc::SIGINT);
    let status = run.wait();
    assert_eq!(status.code(), Some(130), "{}", run.stderr.text());
    assert_all_gone(&pids);
    drop(run);
    writer.join().unwrap();
}

#[test]
fn a_supervisor_paused_longer_than_the_heartbeat_timeout_does_not_blame_its_workers() {
    let _heavy = heavy();
    let text = std::fs::read_to_string(mp_config("baseline"))
        .unwrap()
        .replace("  batch_size: 1024\n", "  batch_size: 1024\n  heartbeat_interval: 100ms\n  heartbeat_timeout: 1s\n")
        .replace("../../../tests/fixtures", &repo().join("tests/fixtures").display().to_string());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "baseline.yml", &text);
    let mut run = Run::start(&config, &["-i", "-"], true);
    run.wait_started();
    run.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2500)); // the pause under test, not a wait for an event
    run.signal(libc::SIGCONT);
    run.write_input(&std::fs::read(fixture("input.txt")).unwrap());
    let status = run.wait();
    assert!(status.success(), "{}", run.stderr.text());
    assert_eq!(run.stdout.bytes(), std::fs::read(fixture("output.txt")).unwrap());
}

#[test]
fn an_output_that_cannot_be_created_fails_before_any_input_is_read() {
    let mut run = Run::start(&mp_config("baseline"), &["-i", "-", "-o", "/nonexistent/dir/out.txt"], true);
    run.write_input(
        b"{\"id\":\"1\",\"customer_id\":\"1\",\"load_amount\":\"$1.00\",\"time\":\"2000-01-01T00:00:00Z\"}\n",
    );
    let status = run.wait();
    let log = run.stderr.text();
    assert_eq!(status.code(), Some(1), "{log}");
    let pid = run.worker_pid("egress");
    assert!(
        log.contains(&format!(
            "execution: process group `egress` (worker pid {pid}), node `sink`: cannot write /nonexistent/dir/out.txt"
        )),
        "{log}"
    );
    assert!(!log.contains("starting ingress"), "{log}");
    assert!(!log.contains("records in"), "no summary: nothing was read\n{log}");
}

#[test]
fn a_fifo_output_waits_for_its_reader_with_every_worker_alive() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let text = std::fs::read_to_string(mp_config("baseline"))
        .unwrap()
        .replace("  batch_size: 1024\n", "  batch_size: 1024\n  heartbeat_interval: 100ms\n  heartbeat_timeout: 2s\n")
        .replace("../../../tests/fixtures", &repo().join("tests/fixtures").display().to_string());
    let config = write_config(dir.path(), "baseline.yml", &text);
    let mut run = Run::start(&config, &["-o", fifo.to_str().unwrap()], false);
    run.stderr.wait_for("the sink to be asked for", |t| t.contains("the last group creates the sink"));
    // Two heartbeat timeouts pass before anyone reads the FIFO.
    let quiet_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < quiet_until {
        assert!(run.child.try_wait().unwrap().is_none(), "{}", run.stderr.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut output = Vec::new();
    std::fs::File::open(&fifo).unwrap().read_to_end(&mut output).unwrap();
    assert!(run.wait().success(), "{}", run.stderr.text());
    assert_eq!(output, std::fs::read(fixture("output.txt")).unwrap());
}

#[test]
fn workers_leave_a_service_wide_sigterm_to_the_supervisor_which_drains() {
    let mut run = Run::start(&mp_config("baseline"), &["-i", "-"], true);
    run.wait_started();
    run.write_input(&std::fs::read(fixture("input.txt")).unwrap());
    run.stdout.wait_for("records at the sink", |t| t.lines().count() >= 1000);
    let pids = run.worker_pids();
    // As systemd stops a unit: SIGTERM to every process of it.
    for pid in &pids {
        // SAFETY: kill(2) with pids this test's run started.
        unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
    }
    run.signal(libc::SIGTERM);
    let status = run.wait();
    let log = run.stderr.text();
    assert_eq!(status.code(), Some(143), "{log}");
    assert!(log.contains("stopped early by SIGTERM: drained"), "{log}");
    assert_eq!(run.stdout.bytes(), std::fs::read(fixture("output.txt")).unwrap());
    assert_all_gone(&pids);
}
