//! The observer against a real PostgreSQL server (started by the test from Debian's binaries,
//! see `pg-testbed`) and a real HTTP receiver, run as the real `hopline` binary.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use pg_testbed::PgServer;
use serde_json::Value;
use webhook_receiver::{Behaviour, Receiver};

fn hopline_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hopline"))
}

const SECRET: &str = "whsec-test-0123456789";

/// An observer config for `orders`, with its webhook's retry policy.
fn config(dir: &Path, consumer: &str, retry: &str, batch_size: usize) -> PathBuf {
    let text = format!(
        r#"app: observer
scenario: orders-test
runtime:
  batch_size: {batch_size}
source:
  kind: postgres
  params:
    database: ${{DATABASE_URL}}
    consumer: {consumer}
    poll_interval: 200ms
sink:
  kind: checkpoint
nodes:
  - kind: match
    params:
      observers:
        - name: order_paid
          table: orders
          ops: [update]
          condition: "changed_to(status, 'paid')"
          actions:
            - webhook:
                url: ${{WEBHOOK_URL}}
                secret: ${{WEBHOOK_SECRET}}
                timeout: 2s
                retry: {retry}
            - log:
                message: "order {{key.id}} paid: {{after.total}}"
  - kind: act
    params:
      concurrency: 16
"#
    );
    let path = dir.join(format!("observer_orders_{consumer}.yml"));
    std::fs::write(&path, text).unwrap();
    path
}

const QUICK_RETRY: &str = "{ attempts: 3, backoff: 20ms, max_backoff: 50ms }";

/// A running `hopline run`, killed when dropped; its stderr is collected.
struct Observer {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

/// Collects what `from` says into a string, on a thread.
fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

impl Observer {
    fn start(pg: &PgServer, receiver: &Receiver, config: &Path, extra: &[&str]) -> Observer {
        let mut child = Command::new(hopline_bin())
            .arg("run")
            .arg(config)
            .args(extra)
            .env("DATABASE_URL", pg.url())
            .env("WEBHOOK_URL", receiver.url())
            .env("WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hopline starts");
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = collect(child.stdout.take().unwrap());
        Observer { child, stderr, stdout }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then waits for the exit code; returns it with stderr.
    fn stop(self) -> (Option<i32>, String) {
        let (code, stderr, _) = self.stop_with_stdout();
        (code, stderr)
    }

    fn stop_with_stdout(mut self) -> (Option<i32>, String, String) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = wait_exit(&mut self.child, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
        (status, self.stderr(), self.stdout())
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "hopline did not exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn client(pg: &PgServer) -> postgres::Client {
    postgres::Client::connect(&pg.url(), postgres::NoTls).expect("connects")
}

/// Creates `orders` with `n` pending orders and migrates it (so every change from now on is
/// captured, whether the observer runs or not).
fn orders(pg: &PgServer, n: i64, dir: &Path, config_path: &Path, receiver: &Receiver) {
    pg.sql(&format!(
        "CREATE TABLE orders (id bigint PRIMARY KEY, status text, total numeric(12,2), customer text);
         INSERT INTO orders SELECT i, 'pending', 10.50 + i, 'c' || (i % 7) FROM generate_series(1, {n}) i;"
    ));
    let out = Command::new(hopline_bin())
        .args(["observer", "migrate"])
        .arg(config_path)
        .env("DATABASE_URL", pg.url())
        .env("WEBHOOK_URL", receiver.url())
        .env("WEBHOOK_SECRET", SECRET)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
}

/// Polls until `check` holds, or panics after `timeout` with `what`.
fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The observer has started: its checkpoint row exists.
fn wait_started(pg: &PgServer, consumer: &str, observer: &Observer) {
    let mut db = client(pg);
    eventually(Duration::from_secs(30), "the observer to start", || {
        let started = db
            .query_one(
                "SELECT to_regclass('hopline.checkpoint') IS NOT NULL AND \
                 EXISTS (SELECT 1 FROM hopline.checkpoint WHERE consumer = $1)",
                &[&consumer],
            )
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if !started {
            assert!(!observer.stderr().contains("hopline: "), "the observer failed: {}", observer.stderr());
        }
        started
    });
}

fn event_ids(requests: &[webhook_receiver::Request]) -> Vec<String> {
    requests.iter().map(|r| r.json()["event_id"].as_str().unwrap().to_string()).collect()
}

fn check_signature(request: &webhook_receiver::Request) {
    let header = request.header("x-hopline-signature").expect("signed");
    let (t, v1) = header.split_once(",v1=").expect("t=...,v1=...");
    let t = t.strip_prefix("t=").unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&request.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1, expected, "the signature is HMAC-SHA256 of t.body");
}

fn traceparent_parts(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    assert!(parts[1].len() == 32 && parts[1].chars().all(|c| c.is_ascii_hexdigit()) && parts[1] != "0".repeat(32));
    assert!(parts[2].len() == 16 && parts[2].chars().all(|c| c.is_ascii_hexdigit()) && parts[2] != "0".repeat(16));
    (parts[1].to_string(), parts[2].to_string(), parts[3].to_string())
}

#[test]
fn one_webhook_per_matching_change_signed_traced_and_keyed() {
    let pg = PgServer::start();
    let receiver = Receiver::start(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "matching", QUICK_RETRY, 64);
    orders(&pg, 20, dir.path(), &config, &receiver);
    let forensic = dir.path().join("run.trace.jsonl");
    let observer = Observer::start(&pg, &receiver, &config, &["--forensic", forensic.to_str().unwrap()]);
    wait_started(&pg, "matching", &observer);

    let mut db = client(&pg);
    // Matching: 1..=5 become paid (one transaction), 6 becomes paid in a traced transaction.
    db.batch_execute("UPDATE orders SET status = 'paid' WHERE id <= 5").unwrap();
    let writer = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    db.batch_execute(&format!(
        "BEGIN; SET LOCAL hopline.traceparent = '{writer}'; UPDATE orders SET status = 'paid' WHERE id = 6; COMMIT;"
    ))
    .unwrap();
    // Not matching: another status, a paid order paid again, an insert, a delete.
    db.batch_execute("UPDATE orders SET status = 'shipped' WHERE id BETWEEN 7 AND 9").unwrap();
    db.batch_execute("UPDATE orders SET total = total + 1 WHERE id = 1").unwrap();
    db.batch_execute("UPDATE orders SET status = 'paid' WHERE id = 2").unwrap();
    db.batch_execute("INSERT INTO orders VALUES (100, 'paid', 1.00, 'x'); DELETE FROM orders WHERE id = 20").unwrap();
    // The last change: once its webhook arrives, every earlier change has been read.
    db.batch_execute("UPDATE orders SET status = 'paid' WHERE id = 10").unwrap();
    eventually(Duration::from_secs(30), "the last webhook", || {
        receiver.requests().iter().any(|r| r.json()["key"]["id"] == 10)
    });
    let (code, stderr) = observer.stop();
    assert_eq!(code, Some(143), "SIGTERM drains and exits 128 + 15: {stderr}");

    let requests = receiver.requests();
    let ids: Vec<i64> = {
        let mut ids: Vec<i64> = requests.iter().map(|r| r.json()["key"]["id"].as_i64().unwrap()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 10], "exactly one webhook per matching change: {stderr}");
    for request in &requests {
        assert_eq!(request.method, "POST");
        let body = request.json();
        assert_eq!(request.header("idempotency-key"), body["event_id"].as_str(), "Idempotency-Key is the event id");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(body["table"], "public.orders");
        assert_eq!(body["op"], "update");
        assert_eq!(body["before"]["status"], "pending");
        assert_eq!(body["after"]["status"], "paid");
        assert!(body["committed_at"].as_str().unwrap().ends_with('Z'));
        traceparent_parts(request.header("traceparent").expect("a traceparent"));
        check_signature(request);
    }
    // The numeric column keeps its digits: 10.50 + 3 is 13.50, not 13.5.
    let three = requests.iter().find(|r| r.json()["key"]["id"] == 3).unwrap();
    assert!(
        String::from_utf8_lossy(&three.body).contains("\"total\": 13.50"),
        "{}",
        String::from_utf8_lossy(&three.body)
    );
    let ids: HashSet<String> = event_ids(&requests).into_iter().collect();
    assert_eq!(ids.len(), 7, "event ids are distinct");

    // The traced transaction's webhook continues the writer's trace.
    let six = requests.iter().find(|r| r.json()["key"]["id"] == 6).unwrap();
    let (trace_id, span_id, flags) = traceparent_parts(six.header("traceparent").unwrap());
    assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(flags, "01");

    // The log action and the summary.
    assert!(stderr.contains("order 6 paid: 16.50"), "{stderr}");
    for count in ["changes", "matched", "delivered", "retried", "dead-lettered"] {
        assert!(stderr.contains(count), "the summary counts {count}: {stderr}");
    }

    // The forensic trace: the change's root span is a child of the writer's span, and under
    // it the condition, the action, its POST (whose id the receiver got) and the checkpoint.
    let text = std::fs::read_to_string(&forensic).expect("a forensic trace");
    let mut spans: Vec<Value> = Vec::new();
    for line in text.lines() {
        let data: Value = serde_json::from_str(line).unwrap();
        for rs in data["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                spans.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    let in_trace: Vec<&Value> = spans.iter().filter(|s| s["traceId"] == trace_id.as_str()).collect();
    let by_id: BTreeMap<&str, &Value> = in_trace.iter().map(|s| (s["spanId"].as_str().unwrap(), *s)).collect();
    let root = in_trace.iter().find(|s| s["name"] == "source").expect("a root span for the change");
    assert_eq!(root["parentSpanId"], "00f067aa0ba902b7", "the root span's parent is the writer's span");
    let post = by_id.get(span_id.as_str()).expect("the request's traceparent is the POST span");
    assert_eq!(post["name"], "POST");
    assert_eq!(post["kind"], 3, "a CLIENT span");
    let attribute = |span: &Value, key: &str| -> Value {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
            .unwrap_or_default()
    };
    assert_eq!(attribute(post, "http.response.status_code")["intValue"], "200");
    assert_eq!(attribute(post, "hopline.attempt")["intValue"], "1");
    let action = by_id[post["parentSpanId"].as_str().unwrap()];
    assert_eq!(action["name"], "action order_paid.webhook");
    let names: HashSet<&str> = in_trace.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for name in [
        "source",
        "match",
        "act",
        "condition order_paid",
        "action order_paid.webhook",
        "action order_paid.log",
        "POST",
        "checkpoint",
    ] {
        assert!(names.contains(name), "span `{name}` in the change's trace: {names:?}");
    }
    for span in &in_trace {
        let parent = span["parentSpanId"].as_str().unwrap();
        assert!(parent == "00f067aa0ba902b7" || by_id.contains_key(parent), "every parent is in the trace: {span}");
    }
}

#[test]
fn a_lower_change_that_commits_last_is_delivered() {
    let pg = PgServer::start();
    let receiver = Receiver::start(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "late", QUICK_RETRY, 64);
    orders(&pg, 4, dir.path(), &config, &receiver);
    let observer = Observer::start(&pg, &receiver, &config, &[]);
    wait_started(&pg, "late", &observer);

    // A writes first (the lower change-log seq) but commits last.
    let mut a = client(&pg);
    let mut b = client(&pg);
    let mut ta = a.transaction().unwrap();
    ta.execute("UPDATE orders SET status = 'paid' WHERE id = 1", &[]).unwrap();
    b.batch_execute("UPDATE orders SET status = 'paid' WHERE id = 2").unwrap();
    let seqs: Vec<i64> = client(&pg)
        .query("SELECT seq FROM hopline.change_log ORDER BY seq", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs.len(), 1, "only B's change is visible while A is open");
    // B is committed, but an older transaction is still open: it waits for it.
    std::thread::sleep(Duration::from_millis(500));
    ta.commit().unwrap();
    let requests = receiver.wait_for(2, Duration::from_secs(20));
    let mut keys: Vec<i64> = requests.iter().map(|r| r.json()["key"]["id"].as_i64().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, [1, 2], "both changes delivered: {}", observer.stderr());
    // A's change has the lower seq, though it committed last.
    let seq_of = |id: i64| -> i64 {
        let r = requests.iter().find(|r| r.json()["key"]["id"] == id).unwrap();
        r.json()["event_id"].as_str().unwrap().split('-').nth(1).unwrap().parse().unwrap()
    };
    assert!(seq_of(1) < seq_of(2));
    let (code, stderr) = observer.stop();
    assert_eq!(code, Some(143), "{stderr}");
    assert_eq!(receiver.count(), 2, "{stderr}");
}

/// Writes `updates` single-row updates that all match (status flips to 'paid' and back: only
/// the flips to 'paid' match), in transactions of `per_tx`, from a thread; returns the ids of
/// the orders paid in order.
fn write_stream(pg: &PgServer, rows: i64, rounds: i64, per_tx: i64, pause: Duration) -> std::thread::JoinHandle<i64> {
    let url = pg.url();
    std::thread::spawn(move || {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut paid = 0;
        for round in 0..rounds {
            let status = if round % 2 == 0 { "paid" } else { "pending" };
            let mut id = 1;
            while id <= rows {
                let last = (id + per_tx - 1).min(rows);
                loop {
                    // The server may be restarting: try the transaction again.
                    let result =
                        db.execute("UPDATE orders SET status = $1 WHERE id BETWEEN $2 AND $3", &[&status, &id, &last]);
                    match result {
                        Ok(_) => break,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(100));
                            if let Ok(fresh) = postgres::Client::connect(&url, postgres::NoTls) {
                                db = fresh;
                            }
                        }
                    }
                }
                if status == "paid" {
                    paid += last - id + 1;
                }
                id = last + 1;
                std::thread::sleep(pause);
            }
        }
        paid
    })
}

#[test]
fn a_killed_observer_resumes_and_delivers_every_change_at_least_once() {
    let pg = PgServer::start();
    let receiver = Receiver::start(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    let batch_size = 32;
    let config = config(dir.path(), "killed", QUICK_RETRY, batch_size);
    orders(&pg, 100, dir.path(), &config, &receiver);
    let observer = Observer::start(&pg, &receiver, &config, &[]);
    wait_started(&pg, "killed", &observer);
    let writer = write_stream(&pg, 100, 12, 5, Duration::from_millis(2));
    // Kill it (SIGKILL) in the middle of the stream, twice.
    eventually(Duration::from_secs(30), "some deliveries", || receiver.count() >= 100);
    observer.kill();
    let observer = Observer::start(&pg, &receiver, &config, &[]);
    eventually(Duration::from_secs(30), "more deliveries", || receiver.count() >= 300);
    observer.kill();
    let observer = Observer::start(&pg, &receiver, &config, &[]);
    let paid = writer.join().unwrap();
    assert_eq!(paid, 600);
    eventually(Duration::from_secs(60), "every change delivered", || {
        event_ids(&receiver.requests()).into_iter().collect::<HashSet<_>>().len() as i64 >= paid
    });
    let (code, stderr) = observer.stop();
    assert_eq!(code, Some(143), "{stderr}");
    let ids = event_ids(&receiver.requests());
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len() as i64, paid, "every change delivered");
    let repeats = ids.len() - distinct.len();
    assert!(
        repeats <= 2 * batch_size,
        "at most one batch delivered again per kill (2 kills, batches of {batch_size}); {repeats} repeats"
    );
    // A row's changes arrived in commit order: for each order, its deliveries in arrival order
    // have increasing change-log numbers (a repeat may restart from the last saved one).
    let mut last_seq: BTreeMap<i64, i64> = BTreeMap::new();
    let mut out_of_order = 0;
    for request in receiver.requests() {
        let body = request.json();
        let id = body["key"]["id"].as_i64().unwrap();
        let seq: i64 = body["event_id"].as_str().unwrap().split('-').nth(1).unwrap().parse().unwrap();
        if let Some(&before) = last_seq.get(&id) {
            if seq < before {
                out_of_order += 1;
            }
        }
        last_seq.insert(id, seq);
    }
    assert!(out_of_order <= repeats, "{out_of_order} deliveries out of commit order with {repeats} repeats");
}

#[test]
fn failing_deliveries_retry_then_go_to_the_dead_letter_queue_and_dlq_retry_delivers_them() {
    let pg = PgServer::start();
    let receiver = Receiver::start(Behaviour::Status(500));
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "failing", QUICK_RETRY, 64);
    orders(&pg, 5, dir.path(), &config, &receiver);
    let observer = Observer::start(&pg, &receiver, &config, &["--narrate"]);
    wait_started(&pg, "failing", &observer);
    let mut db = client(&pg);
    db.batch_execute("UPDATE orders SET status = 'paid' WHERE id = 1").unwrap();
    let tried = receiver.wait_for(3, Duration::from_secs(20));
    assert_eq!(tried.len(), 3, "three attempts");
    let key = tried[0].header("idempotency-key").unwrap().to_string();
    assert!(tried.iter().all(|r| r.header("idempotency-key") == Some(key.as_str())), "one key on every attempt");
    let traceparents: HashSet<&str> = tried.iter().map(|r| r.header("traceparent").unwrap()).collect();
    assert_eq!(traceparents.len(), 3, "each attempt is its own span");

    // A 4xx other than 408/429 is not tried again.
    receiver.set_behaviour(Behaviour::Status(422));
    db.batch_execute("UPDATE orders SET status = 'paid' WHERE id = 2").unwrap();
    eventually(Duration::from_secs(20), "two dead letters", || {
        db.query_one("SELECT count(*) FROM hopline.dlq", &[]).unwrap().get::<_, i64>(0) == 2
    });
    assert_eq!(receiver.count(), 4, "the 422 was not retried");

    // The run goes on: a healthy receiver gets the next change.
    receiver.set_behaviour(Behaviour::Ok);
    db.batch_execute("UPDATE orders SET status = 'paid' WHERE id = 3").unwrap();
    receiver.wait_for(5, Duration::from_secs(20));
    let (code, stderr, stdout) = observer.stop_with_stdout();
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("2 dead-lettered"), "{stderr}");
    assert!(stderr.contains("2 retried"), "{stderr}");
    assert!(stderr.contains("order_paid.webhook gave up on change"), "each dead letter is said: {stderr}");
    // Narration: the run's outcome carries the counts.
    let stopped: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|n| n["action"] == "run.stopped")
        .unwrap_or_else(|| panic!("a run.stopped narration: {stdout}"));
    let fields = &stopped["fields"];
    assert_eq!(fields["match.changes"], 3, "{stopped}");
    assert_eq!(fields["match.matched"], 3, "{stopped}");
    assert_eq!(fields["act.delivered"], 1, "{stopped}");
    assert_eq!(fields["act.retried"], 2, "{stopped}");
    assert_eq!(fields["act.dead-lettered"], 2, "{stopped}");

    let dlq = |args: &[&str]| {
        Command::new(hopline_bin())
            .args(["observer", "dlq"])
            .args(args)
            .args(["--database", &pg.url()])
            .env("WEBHOOK_URL", receiver.url())
            .env("WEBHOOK_SECRET", SECRET)
            .output()
            .unwrap()
    };
    let listed = dlq(&["list", "--json"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let letters: Vec<Value> =
        String::from_utf8(listed.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["event_id"], key.as_str());
    assert_eq!(letters[0]["table"], "public.orders");
    assert_eq!(letters[0]["key"], serde_json::json!({"id": 1}));
    assert_eq!(letters[0]["action"], "order_paid.webhook");
    assert_eq!(letters[0]["attempts"], 3);
    assert!(letters[0]["last_error"].as_str().unwrap().contains("answered 500"), "{}", letters[0]);
    assert_eq!(letters[1]["attempts"], 1);
    assert!(letters[1]["last_error"].as_str().unwrap().contains("answered 422"), "{}", letters[1]);
    let human = dlq(&["list"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("order_paid.webhook"));

    // No secret is stored: the request keeps the reference.
    let stored: String = db.query_one("SELECT request::text FROM hopline.dlq LIMIT 1", &[]).unwrap().get(0);
    assert!(stored.contains("${WEBHOOK_SECRET}") && !stored.contains(SECRET), "{stored}");

    // Retried while the receiver still fails: stays, its attempts counted.
    receiver.set_behaviour(Behaviour::Status(503));
    let first = letters[0]["id"].as_i64().unwrap().to_string();
    let out = dlq(&["retry", &first]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed again: answered 503"));
    receiver.set_behaviour(Behaviour::Ok);
    let before = receiver.count();
    let out = dlq(&["retry", "--all"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let delivered = &receiver.requests()[before..];
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[0].header("idempotency-key"), Some(key.as_str()), "the same key as the run's attempts");
    check_signature(&delivered[0]);
    let left = dlq(&["list", "--json"]);
    assert!(left.stdout.is_empty(), "delivered letters are removed");
    let again = dlq(&["retry", &first]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stdout).contains("not in the queue"));
}

#[test]
fn a_postgres_restart_in_the_middle_of_a_run_loses_nothing() {
    let pg = PgServer::start();
    let receiver = Receiver::start(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "restart", QUICK_RETRY, 32);
    orders(&pg, 50, dir.path(), &config, &receiver);
    let observer = Observer::start(&pg, &receiver, &config, &[]);
    wait_started(&pg, "restart", &observer);
    let writer = write_stream(&pg, 50, 8, 5, Duration::from_millis(5));
    eventually(Duration::from_secs(30), "some deliveries", || receiver.count() >= 40);
    pg.restart();
    let paid = writer.join().unwrap();
    eventually(Duration::from_secs(60), "every change delivered", || {
        event_ids(&receiver.requests()).into_iter().collect::<HashSet<_>>().len() as i64 >= paid
    });
    let stderr = observer.stderr();
    assert!(stderr.contains("reconnect"), "the observer said it reconnected: {stderr}");
    let (code, stderr) = observer.stop();
    assert_eq!(code, Some(143), "{stderr}");
    let distinct: HashSet<String> = event_ids(&receiver.requests()).into_iter().collect();
    assert_eq!(distinct.len() as i64, paid);
}

/// Runs `hopline run` on a config and returns (exit code, stderr).
fn run_config(pg: &PgServer, text: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("observer_orders.yml");
    std::fs::write(&path, text).unwrap();
    let mut command = Command::new(hopline_bin());
    command.arg("run").arg(&path).env("DATABASE_URL", pg.url()).env_remove("WEBHOOK_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_configs_fail_before_anything_starts_and_say_why() {
    let pg = PgServer::start();
    pg.sql("CREATE TABLE orders (id bigint PRIMARY KEY, status text, total numeric(12,2), customer text);");
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(config(dir.path(), "bad", QUICK_RETRY, 64)).unwrap();
    let env = [("WEBHOOK_URL", "http://127.0.0.1:9/hook"), ("WEBHOOK_SECRET", SECRET)];

    let (code, stderr) =
        run_config(&pg, &good.replace("changed_to(status, 'paid')", "changed_to(status, 'paid'"), &env);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("nodes[0].params.observers[0].condition"), "{stderr}");
    assert!(stderr.contains("observer `order_paid`"), "{stderr}");
    assert!(stderr.contains("column"), "{stderr}");
    assert!(stderr.contains("expected `)`"), "{stderr}");

    let (code, stderr) = run_config(&pg, &good, &[("WEBHOOK_SECRET", SECRET)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`WEBHOOK_URL` is not set"), "{stderr}");
    assert!(stderr.contains("webhook.url"), "{stderr}");

    let (code, stderr) = run_config(&pg, &good.replace("secret: ${WEBHOOK_SECRET}", "secret: hunter2hunter2"), &env);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("secret") && !stderr.contains("hunter2"), "{stderr}");

    // Nothing was created by the configs above: they failed before connecting.
    assert!(pg.sql("SELECT to_regnamespace('hopline') IS NULL").contains('t'));

    let (code, stderr) = run_config(&pg, &good.replace("table: orders", "table: ordres"), &env);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the table `public.ordres` does not exist"), "{stderr}");
    assert!(stderr.contains("observer `order_paid`") && stderr.contains("observers[0].table"), "{stderr}");

    let (code, stderr) =
        run_config(&pg, &good.replace("changed_to(status, 'paid')", "changed_to(state, 'paid')"), &env);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("reads the column `state`"), "{stderr}");
    assert!(stderr.contains("id, status, total, customer"), "{stderr}");

    let (code, stderr) = run_config(&pg, &good, &[("DATABASE_URL", "postgres://postgres@127.0.0.1:9/none")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("WEBHOOK_URL"), "{stderr}");
    let (code, stderr) =
        run_config(&pg, &good, &[("DATABASE_URL", "postgres://postgres:pw-secret@127.0.0.1:9/none"), env[0], env[1]]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to 127.0.0.1:9/none"), "{stderr}");
    assert!(!stderr.contains("pw-secret"), "{stderr}");
}

/// A config whose one observer takes every change of `table` (no condition), with a webhook.
fn config_all(dir: &Path, consumer: &str, table: &str) -> PathBuf {
    let text = std::fs::read_to_string(config(dir, consumer, QUICK_RETRY, 64))
        .unwrap()
        .replace("table: orders", &format!("table: {table}"))
        .replace("          ops: [update]\n", "")
        .replace("          condition: \"changed_to(status, 'paid')\"\n", "")
        .replace("order {key.id} paid: {after.total}", "{op} {table} {key.id}");
    let path = dir.join(format!("observer_orders_{consumer}_all.yml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_rows_changes_arrive_in_commit_order_even_when_its_transaction_ids_do_not_follow_it() {
    let pg = PgServer::start();
    let receiver = Receiver::start(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    pg.sql(
        "CREATE TABLE orders (id bigint PRIMARY KEY, status text, total numeric(12,2), customer text);
            INSERT INTO orders VALUES (1, 'new', 1.00, 'a'), (2, 'new', 2.00, 'b'), (3, 'new', 3.00, 'c');",
    );
    let config = config_all(dir.path(), "order", "orders");
    let observer = Observer::start(&pg, &receiver, &config, &[]);
    wait_started(&pg, "order", &observer);

    // B takes a transaction id first; C takes the next and stays open; A takes a later one,
    // changes order 1 and commits; then B changes order 1 and commits. A's change is first in
    // commit order, but B's transaction id is below the oldest open one (C) and A's is not.
    let (mut b, mut c, mut a) = (client(&pg), client(&pg), client(&pg));
    let mut tb = b.transaction().unwrap();
    tb.execute("UPDATE orders SET customer = 'b2' WHERE id = 2", &[]).unwrap();
    let mut tc = c.transaction().unwrap();
    tc.execute("UPDATE orders SET customer = 'c2' WHERE id = 3", &[]).unwrap();
    a.batch_execute("UPDATE orders SET status = 'paid' WHERE id = 1").unwrap();
    tb.execute("UPDATE orders SET status = 'shipped' WHERE id = 1", &[]).unwrap();
    tb.commit().unwrap();
    // Only B's changes are below C's transaction id: they go now, with A's before them.
    let got = receiver.wait_for(3, Duration::from_secs(20));
    let statuses: Vec<(i64, String)> = got
        .iter()
        .map(|r| (r.json()["key"]["id"].as_i64().unwrap(), r.json()["after"]["status"].as_str().unwrap().to_string()))
        .collect();
    let order_one: Vec<&str> = statuses.iter().filter(|(id, _)| *id == 1).map(|(_, s)| s.as_str()).collect();
    assert_eq!(order_one, ["paid", "shipped"], "order 1's changes in commit order: {statuses:?}");
    tc.commit().unwrap();
    receiver.wait_for(4, Duration::from_secs(20));
    // Stopped and started again: A's change, delivered ahead of its window, is not sent again.
    let (code, stderr) = observer.stop();
    assert_eq!(code, Some(143), "{stderr}");
    let observer = Observer::start(&pg, &receiver, &config, &[]);
    wait_started(&pg, "order", &observer);
    a.batch_execute("UPDATE orders SET status = 'delivered' WHERE id = 1").unwrap();
    let got = receiver.wait_for(5, Duration::from_secs(20));
    let (code, stderr) = observer.stop();
    assert_eq!(code, Some(143), "{stderr}");
    let ids = event_ids(&receiver.requests());
    assert_eq!(ids.len(), 5, "no change twice: {:?}", got.iter().map(|r| r.json()).collect::<Vec<_>>());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 5);
    let last = receiver.requests().last().unwrap().json();
    assert_eq!(last["after"]["status"], "delivered");
}

#[test]
fn inserts_deletes_key_changes_and_huge_numbers_are_captured_as_written() {
    let pg = PgServer::start();
    let receiver = Receiver::start(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    pg.sql(
        "CREATE TABLE things (id bigint PRIMARY KEY, n numeric, doc jsonb);
            INSERT INTO things VALUES (1, 1, '{}'), (2, 2, '{}'), (3, 3, '{}');",
    );
    let config = config_all(dir.path(), "things", "things");
    let observer = Observer::start(&pg, &receiver, &config, &[]);
    wait_started(&pg, "things", &observer);
    let mut db = client(&pg);
    // Keys changed by one statement: 2→12 and 3→13 (old and new rows are paired by position).
    db.batch_execute("UPDATE things SET id = id + 10 WHERE id >= 2").unwrap();
    db.batch_execute("INSERT INTO things VALUES (10, 1e400, '{\"a\\\"b\": {\"c\": 1}}')").unwrap();
    db.batch_execute("DELETE FROM things WHERE id = 1").unwrap();
    let got = receiver.wait_for(4, Duration::from_secs(20));
    let (code, stderr) = observer.stop();
    assert_eq!(code, Some(143), "{stderr}");
    // (The insert's body holds a number serde_json cannot read: left out here, read as text below.)
    let bodies: Vec<Value> = got.iter().filter_map(|r| serde_json::from_slice(&r.body).ok()).collect();
    assert_eq!(bodies.len(), 3);
    let moved: BTreeMap<i64, i64> = bodies
        .iter()
        .filter(|b| b["op"] == "update")
        .map(|b| (b["before"]["id"].as_i64().unwrap(), b["after"]["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(moved, BTreeMap::from([(2, 12), (3, 13)]), "each row paired with itself: {bodies:?}");
    assert!(bodies.iter().filter(|b| b["op"] == "update").all(|b| b["key"]["id"] == b["after"]["id"]));
    let inserted = got.iter().find(|r| String::from_utf8_lossy(&r.body).contains("\"op\":\"insert\"")).unwrap();
    let text = String::from_utf8_lossy(&inserted.body);
    assert!(text.contains(&format!("\"n\": 1{}", "0".repeat(400))), "a number beyond f64 keeps its digits: {text}");
    assert!(text.contains("\"key\":{\"id\": 10}") && text.contains("\"before\":null"), "{text}");
    assert!(text.contains(r#""doc": {"a\"b": {"c": 1}}"#), "{text}");
    let deleted = bodies.iter().find(|b| b["op"] == "delete").unwrap();
    assert_eq!(deleted["key"], serde_json::json!({"id": 1}));
    assert!(deleted["after"].is_null());
    assert!(stderr.contains("insert public.things 10"), "the log line: {stderr}");
}

/// A TCP proxy in front of PostgreSQL that can cut every connection through it at once.
struct Cutter {
    port: u16,
    live: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Cutter {
    fn start(to: u16) -> Cutter {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let live: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let registry = Arc::clone(&live);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else { continue };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut live = registry.lock().unwrap();
                    live.push(client.try_clone().unwrap());
                    live.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Cutter { port, live }
    }

    /// Cuts every connection open through the proxy.
    fn cut(&self) {
        for stream in self.live.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn connections_cut_again_and_again_lose_no_change() {
    let pg = PgServer::start();
    let receiver = Receiver::start(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "cut", QUICK_RETRY, 16);
    orders(&pg, 40, dir.path(), &config, &receiver);
    let cutter = Cutter::start(pg.port());
    let through = format!("postgres://postgres@127.0.0.1:{}/postgres", cutter.port);
    let mut child = Command::new(hopline_bin())
        .arg("run")
        .arg(&config)
        .env("DATABASE_URL", &through)
        .env("WEBHOOK_URL", receiver.url())
        .env("WEBHOOK_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    let observer = Observer { child, stderr, stdout: Arc::new(Mutex::new(String::new())) };
    wait_started(&pg, "cut", &observer);
    // The writer goes straight to the server; the observer's every connection is cut every
    // 30 ms or so while the changes stream in, at whatever query it is in.
    let writer = write_stream(&pg, 40, 10, 4, Duration::from_millis(3));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutting = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut cuts = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(30));
                cutter.cut();
                cuts += 1;
            }
            cuts
        })
    };
    let paid = writer.join().unwrap();
    eventually(Duration::from_secs(60), "every change delivered", || {
        event_ids(&receiver.requests()).into_iter().collect::<HashSet<_>>().len() as i64 >= paid
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let cuts = cutting.join().unwrap();
    assert!(cuts > 10, "the connections were cut {cuts} times");
    let (_, stderr) = observer.stop();
    assert!(stderr.contains("reconnect"), "{stderr}");
    let distinct: HashSet<String> = event_ids(&receiver.requests()).into_iter().collect();
    assert_eq!(distinct.len() as i64, paid, "every change delivered");
}
