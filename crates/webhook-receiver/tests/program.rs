//! The `webhook-receiver` program: its first line, its answers, the record it writes when
//! stopped by a signal or by the end of its input, and what it prints with `--print`.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Program {
    child: Child,
    url: String,
    _stdout: BufReader<ChildStdout>,
}

/// Starts the program with `args`, and reads the URL from its first line.
fn start(args: &[&str], stdin: Stdio) -> Program {
    let mut child = Command::new(env!("CARGO_BIN_EXE_webhook-receiver"))
        .args(["--port", "0"])
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url =
        line.trim_end().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/hook"), "{url}");
    Program { child, url, _stdout: stdout }
}

fn post(client: &reqwest::blocking::Client, url: &str, headers: &[(&str, &str)]) {
    let mut request = client.post(url).body("{}");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

#[test]
fn sigterm_writes_one_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.txt");
    let program = start(&["--record", record.to_str().unwrap()], Stdio::null());
    let before = now_nanos();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    post(&client, &program.url, &[("idempotency-key", "evt-1"), ("x-commit-ns", "1700000000000000001")]);
    post(&client, &program.url, &[("idempotency-key", "evt-2")]);
    post(&client, &program.url, &[("x-commit-ns", "1700000000000000003")]);
    post(&client, &program.url, &[("idempotency-key", "with space")]);
    let after = now_nanos();

    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
    assert_eq!(unsafe { libc::kill(program.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let output = program.child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("4 requests"), "{output:?}");

    let text = std::fs::read_to_string(&record).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|line| line.split(' ').collect()).collect();
    let fields: Vec<[&str; 2]> = lines.iter().map(|line| [line[1], line[2]]).collect();
    assert_eq!(
        fields,
        [["evt-1", "1700000000000000001"], ["evt-2", "-"], ["-", "1700000000000000003"], ["with_space", "-"]]
    );
    for line in &lines {
        assert_eq!(line.len(), 3);
        let received: u128 = line[0].parse().unwrap();
        assert!(received >= before && received <= after, "{line:?}");
    }
}

#[test]
fn the_end_of_input_stops_it_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.txt");
    let mut program = start(&["--record", record.to_str().unwrap(), "--exit-on-stdin-eof"], Stdio::piped());
    let client = reqwest::blocking::Client::new();
    post(&client, &program.url, &[("idempotency-key", "only")]);
    drop(program.child.stdin.take());
    let status = program.child.wait().unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.ends_with(" only -\n") && text.lines().count() == 1, "{text:?}");
}

#[test]
fn without_a_record_it_only_counts() {
    let program = start(&[], Stdio::null());
    post(&reqwest::blocking::Client::new(), &program.url, &[]);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(program.child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let output = program.child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr).trim(), "webhook-receiver: 1 requests");
}

/// Kills and reaps the program however the test ends, so that a failed assertion leaves no
/// process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn print_writes_each_request_as_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.txt");
    let Program { child, url, _stdout: stdout } =
        start(&["--print", "--record", record.to_str().unwrap()], Stdio::null());
    let mut child = KillOnDrop(child);
    // Lines are read on a thread, so that a block that never ends fails the test, not hangs it.
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in stdout.lines() {
            if sender.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || lines.recv_timeout(Duration::from_secs(10)).expect("a printed line");

    let body = serde_json::json!({ "id": 7, "kind": "created", "tags": ["a", "b"] });
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let response = client
        .post(format!("{url}?attempt=1"))
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", "evt-7")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // The block is written and flushed before the answer, so it is all there by now.
    let first = next();
    let (time, request) = first.strip_prefix("--- ").unwrap_or_else(|| panic!("{first:?}")).split_once(' ').unwrap();
    assert_eq!(request, "POST /hook?attempt=1");
    assert!(time.len() == 27 && time.as_bytes()[10] == b'T' && time.ends_with('Z'), "{time}");
    let headers: Vec<String> = std::iter::from_fn(|| Some(next()).filter(|line| !line.is_empty())).collect();
    assert!(headers.iter().any(|line| line == "content-type: application/json"), "{headers:?}");
    assert!(headers.iter().any(|line| line == "idempotency-key: evt-7"), "{headers:?}");
    assert!(headers.iter().all(|line| line.split_once(": ").is_some_and(|(name, _)| name == name.to_lowercase())));
    let printed: Vec<String> = std::iter::from_fn(|| Some(next()).filter(|line| !line.is_empty())).collect();
    assert_eq!(printed.join("\n"), serde_json::to_string_pretty(&body).unwrap());

    // It combines with --record.
    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
    assert_eq!(unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) }, 0);
    assert!(child.0.wait().unwrap().success());
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.ends_with(" evt-7 -\n") && text.lines().count() == 1, "{text:?}");
}
