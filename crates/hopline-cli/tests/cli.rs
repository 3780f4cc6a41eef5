//! The `hopline` binary as a user runs it: real processes, real files, stdin and stdout.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/fund_load").join(name)
}

fn config(scenario: &str) -> PathBuf {
    repo().join("pipelines/fund_load").join(format!("{scenario}.yml"))
}

fn hopline() -> Command {
    Command::cargo_bin("hopline").unwrap()
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn baseline_on_the_reference_input_is_byte_identical() {
    let output = hopline().arg("run").arg(config("baseline")).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(output.stdout, std::fs::read(fixture("output.txt")).unwrap());
}

#[test]
fn exp_mp_on_the_reference_input_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let output = hopline().arg("run").arg(config("exp_mp")).arg("--output").arg(&out).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(output.stdout.is_empty());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(fixture("output_exp_mp.txt")).unwrap());
}

#[test]
fn dash_reads_stdin_and_writes_stdout() {
    let input = std::fs::read(fixture("input.txt")).unwrap();
    let output = hopline()
        .args(["run", "--input", "-", "--output", "-"])
        .arg(config("baseline"))
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(output.stdout, std::fs::read(fixture("output.txt")).unwrap());
}

#[test]
fn summary_on_stderr_counts_records_decisions_and_speed() {
    let output = hopline().arg("run").arg(config("baseline")).output().unwrap();
    let stderr = stderr_of(&output);
    assert!(stderr.contains("fund_load/baseline (memory profile): 1,000 records in, 1,000 out in"), "{stderr}");
    assert!(stderr.contains(" records/s)"), "{stderr}");
    assert!(stderr.contains("format: 753 accepted, 247 declined"), "{stderr}");
    assert!(stderr.contains("16 duplicate ids"), "{stderr}");
    // Not a terminal: no progress bar, no control characters.
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn quiet_prints_no_summary() {
    let output = hopline().args(["run", "--quiet"]).arg(config("baseline")).output().unwrap();
    assert!(output.status.success());
    assert!(output.stderr.is_empty(), "{}", stderr_of(&output));
}

#[test]
fn malformed_lines_are_declined_counted_and_the_run_goes_on() {
    let input = concat!(
        r#"{"id":"1","customer_id":"1","load_amount":"$10.00","time":"2000-01-01T00:00:00Z"}"#,
        "\n",
        r#"{"id":"2","customer_id":"1","load_amount":"$10.0","time":"2000-01-01T00:00:00Z"}"#,
        "\n",
        "\n",
        r#"{"id":"3","customer_id":"1","load_amount":"$10.00","time":"2000-01-01T00:00:60Z"}"#,
        "\n",
        "not json at all\n",
        r#"{"id":"2","customer_id":"1","load_amount":"$10.00","time":"2000-01-01T00:00:00Z"}"#,
        "\n",
    );
    let output = hopline().args(["run", "-i", "-"]).arg(config("baseline")).write_stdin(input).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let expected = concat!(
        r#"{"id":"1","customer_id":"1","accepted":true}"#,
        "\n",
        r#"{"id":"2","customer_id":"1","accepted":false}"#,
        "\n",
        r#"{"id":"","customer_id":"","accepted":false}"#,
        "\n",
        r#"{"id":"3","customer_id":"1","accepted":false}"#,
        "\n",
        r#"{"id":"","customer_id":"","accepted":false}"#,
        "\n",
        r#"{"id":"2","customer_id":"1","accepted":true}"#,
        "\n",
    );
    assert_eq!(String::from_utf8(output.stdout.clone()).unwrap(), expected);
    let stderr = stderr_of(&output);
    assert!(stderr.contains("parse: 4 malformed lines"), "{stderr}");
    assert!(stderr.contains("load_amount does not match the amount grammar: 1 (line 2)"), "{stderr}");
    assert!(stderr.contains("blank line: 1 (line 3)"), "{stderr}");
    assert!(stderr.contains("time is not an RFC 3339 date-time with a zone: 1 (line 4)"), "{stderr}");
    assert!(stderr.contains("not valid JSON: 1 (line 5)"), "{stderr}");
}

/// Writes `text` as a config beside the fixtures' relative paths would not resolve, so the
/// source path is given with --input.
fn broken_config(dir: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(config("baseline")).unwrap();
    assert!(text.contains(from), "{from} not in baseline.yml");
    let path = dir.join("broken.yml");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path
}

fn line_of(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path).unwrap().lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn typo_in_a_key_fails_with_file_key_path_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = broken_config(dir.path(), "weekly_amount:", "weekly_amout:");
    let out = dir.path().join("out.txt");
    let output =
        hopline().arg("run").arg(&path).arg("-i").arg(fixture("input.txt")).arg("-o").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    let line = line_of(&path, "weekly_amout");
    assert!(
        stderr.contains(&format!("{}:{line}:", path.display()))
            && stderr.contains("nodes[4].params.weekly_amout: unknown field `weekly_amout`"),
        "{stderr}"
    );
    assert!(!out.exists(), "a config error must not create the output");
}

#[test]
fn invalid_values_fail_before_any_input_is_read() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to, expected) in [
        (
            "daily_amount: 5000.00",
            "daily_amount: -5000.00",
            "nodes[4].params.daily_amount: expected a non-negative amount",
        ),
        (
            "monday_multiplier: 1",
            "monday_multiplier: 0.5",
            "nodes[3].params.monday_multiplier: expected a multiplier from 1",
        ),
        (
            "daily_attempts: 3",
            "daily_attempts: three",
            "nodes[4].params.daily_attempts: invalid type: string \"three\"",
        ),
        ("week_start: monday", "week_start: someday", "nodes[1].params.week_start: unknown variant `someday`"),
        ("kind: idempotency", "kind: idempotence", "nodes[2].kind: unknown node kind `idempotence`"),
        ("profile: memory", "profile: distributed", "runtime.profile: unknown variant `distributed`"),
    ] {
        let path = broken_config(dir.path(), from, to);
        // The input does not exist: a config error must come first.
        let output = hopline().arg("run").arg(&path).args(["-i", "/nonexistent/input.txt"]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{to}");
        let stderr = stderr_of(&output);
        let line = line_of(&path, to);
        assert!(stderr.contains(&format!(":{line}:")), "{to}: {stderr}");
        assert!(stderr.contains(expected), "{to}: {stderr}");
    }
}

#[test]
fn unknown_app_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = broken_config(dir.path(), "app: fund_load", "app: fund_lode");
    let output = hopline().arg("run").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    let line = line_of(&path, "app: fund_lode");
    assert!(
        stderr.contains(&format!(":{line}:6: app: unknown app `fund_lode`; expected one of: fund_load")),
        "{stderr}"
    );
}

#[test]
fn missing_input_file_fails_with_its_path() {
    let output = hopline().arg("run").arg(config("baseline")).args(["-i", "/nonexistent/input.txt"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("cannot read /nonexistent/input.txt: No such file or directory"), "{stderr}");
}

#[test]
fn missing_config_file_fails_with_its_path() {
    let output = hopline().args(["run", "/nonexistent/pipeline.yml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("cannot read config /nonexistent/pipeline.yml"), "{}", stderr_of(&output));
}

#[test]
fn unwritable_output_fails_with_its_path() {
    let output =
        hopline().arg("run").arg(config("baseline")).args(["-o", "/nonexistent/dir/out.txt"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains("cannot write /nonexistent/dir/out.txt"), "{}", stderr_of(&output));
}

#[test]
fn closed_stdout_ends_the_run_quietly_like_a_unix_filter() {
    use std::io::Read;
    use std::process::{Command as Process, Stdio};
    let input = repo().join("tests/fixtures/fund_load/input.txt");
    let big = tempfile::NamedTempFile::new().unwrap();
    let text = std::fs::read_to_string(&input).unwrap().repeat(200);
    std::fs::write(big.path(), text).unwrap();
    let mut child = Process::new(assert_cmd::cargo::cargo_bin("hopline"))
        .arg("run")
        .arg(config("baseline"))
        .arg("-i")
        .arg(big.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the reader goes away
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(141));
    assert!(output.stderr.is_empty(), "{}", stderr_of(&output));
}

#[test]
fn help_explains_every_flag() {
    let top = hopline().arg("--help").output().unwrap();
    let top = String::from_utf8(top.stdout).unwrap();
    for word in ["run", "check", "nodes", "generate", "Exit codes"] {
        assert!(top.contains(word), "--help lacks {word}: {top}");
    }
    let run = hopline().args(["run", "--help"]).output().unwrap();
    let run = String::from_utf8(run.stdout).unwrap();
    for flag in ["--input <PATH>", "--output <PATH>", "--correlation-id <ID>", "--quiet", "<CONFIG>"] {
        assert!(run.contains(flag), "run --help lacks {flag}: {run}");
    }
}

#[test]
fn check_validates_without_running() {
    let output = hopline().arg("check").arg(config("exp_mp")).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("source → parse → time_keys → idempotency → features → policies → format → sink"),
        "{stdout}"
    );
}

#[test]
fn nodes_lists_every_fund_load_node_kind() {
    let output = hopline().arg("nodes").output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    for kind in ["parse", "time_keys", "idempotency", "features", "policies", "format"] {
        assert!(stdout.contains(&format!("  {kind} ")), "{stdout}");
    }
}

#[test]
fn generator_is_deterministic_by_seed_and_feeds_a_run() {
    let generate =
        |seed: &str| hopline().args(["generate", "fund_load", "-n", "5000", "--seed", seed]).output().unwrap().stdout;
    let a = generate("42");
    assert_eq!(a, generate("42"));
    assert_ne!(a, generate("43"));
    assert_eq!(a.iter().filter(|&&b| b == b'\n').count(), 5000);
    let output = hopline().args(["run", "-i", "-", "-q"]).arg(config("exp_mp")).write_stdin(a).output().unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout.iter().filter(|&&b| b == b'\n').count(), 5000);
}

#[test]
fn run_in_another_working_directory_finds_the_input_beside_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let output = hopline().current_dir(dir.path()).arg("run").arg(config("baseline")).output().unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout, std::fs::read(fixture("output.txt")).unwrap());
}

fn trace_fixture() -> PathBuf {
    repo().join("tests/fixtures/trace/three_process_run.jsonl")
}

#[test]
fn trace_summary_shows_nodes_hops_errors_and_the_slowest_events() {
    let output = hopline().args(["trace", "summary"]).arg(trace_fixture()).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("forensic trace: 3 traces, 31 spans, 3 processes\n"), "{text}");
    assert!(text.contains("  policies (policy): 3 spans (1 error); p50 40.000 µs"), "{text}");
    assert!(text.contains("  hop 1 ingest → policy: 3 pairs;"), "{text}");
    assert!(text.contains("  event 3: node policies (policy): node error: no limit table for customer 528"), "{text}");
    assert!(text.contains("slowest traces"), "{text}");
}

#[test]
fn trace_merge_collapses_repeats_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged.jsonl");
    let output = hopline()
        .args(["trace", "merge"])
        .arg(trace_fixture())
        .arg(trace_fixture())
        .arg("-o")
        .arg(&out)
        .arg("--level")
        .arg("debug")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("31 spans from 2 files; 31 repeats dropped, 0 debug spans left out"));
    let summary = hopline().args(["trace", "summary"]).arg(&out).output().unwrap();
    assert!(String::from_utf8_lossy(&summary.stdout).starts_with("forensic trace: 3 traces, 31 spans, 3 processes"));
}

#[test]
fn trace_export_writes_chrome_trace_events() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace.json");
    let output = hopline()
        .args(["trace", "export"])
        .arg(trace_fixture())
        .args(["--format", "chrome", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    assert_eq!(events.iter().filter(|e| e["name"] == "process_name").count(), 3);
    assert_eq!(events.iter().filter(|e| e["ph"] == "X").count(), 31);
    assert_eq!(events.iter().filter(|e| e["ph"] == "s").count(), events.iter().filter(|e| e["ph"] == "f").count());
}

#[test]
fn trace_commands_name_a_missing_or_bad_file() {
    let output = hopline().args(["trace", "summary", "/nonexistent/run.jsonl"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr_of(&output),
        "hopline: /nonexistent/run.jsonl: cannot open the trace file: No such file or directory (os error 2)\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"resourceSpans\": [}\n").unwrap();
    let output = hopline().args(["trace", "summary"]).arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains("bad.jsonl:1:"), "{}", stderr_of(&output));
}

#[test]
fn adapter_kinds_belong_to_their_app() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(config("baseline")).unwrap();
    // fund_load reads and writes NDJSON only.
    let foreign = dir.path().join("foreign.yml");
    let replaced = text.replacen("source:\n  kind: ndjson\n", "source:\n  kind: postgres\n", 1);
    assert_ne!(replaced, text, "the baseline config has a block `source:` to edit");
    let replaced = replaced.replacen("  path: ../../tests/fixtures/fund_load/input.txt\n", "", 1);
    std::fs::write(&foreign, replaced).unwrap();
    let output = hopline().arg("check").arg(&foreign).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("unknown source kind `postgres` for app `fund_load`; expected ndjson"),
        "{}",
        stderr_of(&output)
    );
    // The observer's ends run in one process only.
    let observer = repo().join("pipelines/observer/observer_orders.yml");
    let text = std::fs::read_to_string(&observer).unwrap().replace(
        "runtime:\n  batch_size: 256\n",
        "runtime:\n  profile: multiprocess\n  process_groups:\n    - { name: all, nodes: [match, act] }\n",
    );
    let text = text.replace("    database: ${DATABASE_URL}\n", "    database: ${DATABASE_URL}\n  group: all\n");
    let text = text.replace("  kind: checkpoint\n", "  kind: checkpoint\n  group: all\n");
    let split = dir.path().join("observer_orders_mp.yml");
    std::fs::write(&split, text).unwrap();
    let output = hopline()
        .arg("check")
        .arg(&split)
        .env("DATABASE_URL", "postgres://localhost/db")
        .env("WEBHOOK_URL", "http://127.0.0.1:9/hook")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("runs under `profile: memory` only"), "{}", stderr_of(&output));
}
