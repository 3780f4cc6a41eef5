//! `hopline run --narrate`: every process of a run narrates on the stdout they share, one JSON
//! object a line, read back here with the runtime's own parser, from real runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hopline_runtime::narration::{Level, Narration};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn hopline_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("hopline")
}

/// A run, killed (its workers die with it) if the test ends first.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let child = Command::new(hopline_bin())
        .arg("run")
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(Some(child));
    let child = running.0.take().unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    let watchdog = std::thread::spawn(move || {
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return;
            }
        }
        // SAFETY: kill(2) on the pid of a child this test started; no memory involved.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let output = child.wait_with_output().unwrap();
    let _ = watchdog;
    output
}

/// Every stdout line, parsed: a line that is not narration fails the test.
fn narration(output: &Output) -> Vec<Narration> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| Narration::parse(line).unwrap_or_else(|| panic!("not narration: {line}")))
        .collect()
}

fn actions(lines: &[Narration]) -> Vec<String> {
    lines.iter().map(|n| n.action.clone()).collect()
}

/// Each process numbers its lines 1, 2, 3, ... in the order they reach stdout.
fn check_sequences(lines: &[Narration]) {
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for line in lines {
        let previous = last.insert(line.actor.pid, line.seq).unwrap_or(0);
        assert_eq!(line.seq, previous + 1, "pid {}: {line:?}", line.actor.pid);
    }
}

#[test]
fn every_process_of_a_multiprocess_run_narrates_in_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let config = repo().join("pipelines/fund_load/multiprocess/baseline.yml");
    let correlation = "0af7651916cd43dd8448eb211c80319c";
    let output = run(
        &[config.to_str().unwrap(), "--narrate", "-o", out.to_str().unwrap(), "--correlation-id", correlation],
        &[("HOPLINE_JOB_ID", "job-42")],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(repo().join("tests/fixtures/fund_load/output.txt")).unwrap()
    );
    let lines = narration(&output);
    check_sequences(&lines);
    assert!(lines.iter().all(|n| n.job.as_deref() == Some("job-42") && n.correlation_id == correlation));
    let processes: std::collections::BTreeSet<(String, Option<String>)> =
        lines.iter().map(|n| (n.actor.process.clone(), n.actor.group.clone())).collect();
    assert_eq!(processes.len(), 4, "the supervisor and three workers narrate: {processes:?}");
    let said = actions(&lines);
    assert_eq!(said.first().map(String::as_str), Some("run.start"));
    assert_eq!(said.last().map(String::as_str), Some("run.succeeded"), "{said:?}");
    for group in ["ingest", "policy", "egress"] {
        assert!(lines.iter().any(|n| n.action == "group.ready" && n.target.as_deref() == Some(group)), "{said:?}");
        let done = lines
            .iter()
            .find(|n| n.action == "worker.done" && n.actor.group.as_deref() == Some(group))
            .unwrap_or_else(|| panic!("{group} says it is done: {said:?}"));
        assert_eq!(done.fields["records_out"], 1000);
    }
    let ingress = said.iter().position(|a| a == "run.ingress").expect("ingress is narrated");
    assert!(said.iter().rposition(|a| a == "group.ready").unwrap() < ingress, "every group is ready before input");
    assert!(lines.iter().any(|n| n.action == "source.open" && n.actor.group.as_deref() == Some("ingest")));
    assert!(lines.iter().any(|n| n.action == "sink.open" && n.actor.group.as_deref() == Some("egress")));
    let summary = lines.last().unwrap();
    assert_eq!(summary.fields["records_in"], 1000);
    assert_eq!(summary.fields["policies.accepted"], 753);
}

#[test]
fn a_failing_worker_is_narrated_with_the_root_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.ndjson"), (1..=20).map(|i| format!("{{\"n\":{i}}}\n")).collect::<String>())
        .unwrap();
    let config = dir.path().join("probe.yml");
    std::fs::write(
        &config,
        "app: probe\nscenario: drill\nruntime:\n  profile: multiprocess\n  batch_size: 1\n  process_groups:\n    - { name: a, nodes: [pass] }\n    - { name: b, nodes: [fault] }\nsource: { kind: ndjson, path: input.ndjson, group: a }\nsink: { kind: ndjson, path: out.ndjson, group: b }\nnodes:\n  - kind: pass\n  - kind: fault\n    params: { at: 3, action: error }\n",
    )
    .unwrap();
    let output = run(&[config.to_str().unwrap(), "--narrate"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = narration(&output);
    check_sequences(&lines);
    let failed = lines.iter().find(|n| n.action == "worker.failed").expect("the worker says it failed");
    assert_eq!(failed.actor.group.as_deref(), Some("b"));
    assert_eq!(failed.level, Level::Error);
    let last = lines.last().unwrap();
    assert_eq!(last.action, "run.failed");
    assert_eq!(last.level, Level::Error);
    assert!(last.message.contains("fault") && last.message.contains("event 3"), "{}", last.message);
    assert_eq!(last.fields["node"], "fault");
    assert_eq!(last.fields["seq"], 3);
    assert_eq!(last.fields["kind"], "execution");
}

#[test]
fn a_long_memory_run_narrates_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.ndjson"), (1..=300).map(|i| format!("{{\"n\":{i}}}\n")).collect::<String>())
        .unwrap();
    let config = dir.path().join("slow.yml");
    std::fs::write(
        &config,
        "app: probe\nscenario: slow\nruntime: { batch_size: 10 }\nsource: { kind: ndjson, path: input.ndjson }\nsink: { kind: ndjson, path: out.ndjson }\nnodes:\n  - kind: delay\n    params: { every_ms: 60, every: 10 }\n",
    )
    .unwrap();
    let output = run(&[config.to_str().unwrap(), "--narrate"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = narration(&output);
    check_sequences(&lines);
    assert!(lines.iter().all(|n| n.actor.process == "run" && n.job.is_none()));
    let progress: Vec<&Narration> = lines.iter().filter(|n| n.action == "progress").collect();
    assert!(!progress.is_empty(), "a run of about 1.8 s says how far it is: {:?}", actions(&lines));
    assert!(progress.iter().all(|p| p.fields["records_in"].as_u64().unwrap() <= 300));
    assert_eq!(actions(&lines).last().map(String::as_str), Some("run.succeeded"));
}

#[test]
fn narration_needs_stdout_to_itself() {
    let config = repo().join("pipelines/fund_load/baseline.yml");
    let output = run(&[config.to_str().unwrap(), "--narrate"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sink.path: narration (--narrate) is written to standard output"), "{stderr}");
}

#[test]
fn narration_and_the_stdout_span_exporter_cannot_share_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo().join("pipelines/fund_load/baseline.yml")).unwrap();
    let config = dir.path().join("traced.yml");
    std::fs::write(
        &config,
        shipped.replacen("runtime:\n", "runtime:\n  observability:\n    tracing: { exporters: [stdout] }\n", 1),
    )
    .unwrap();
    let out = dir.path().join("out.txt");
    let output = run(&[config.to_str().unwrap(), "--narrate", "-o", out.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the `stdout` exporter and narration (--narrate) would share standard output"), "{stderr}");
}
