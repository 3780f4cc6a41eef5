//! `hopline coordinator` as a real process on an ephemeral port, driven over real HTTP: the
//! jobs API, its tokens and bounds, and each job's SSE stream.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;

const TOKEN: &str = "test-token-0123456789abcdef";

fn hopline_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("hopline")
}

/// A running coordinator, killed when dropped.
struct Coordinator {
    child: Child,
    url: String,
    stderr: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Coordinator {
    fn start(extra: &[&str]) -> Coordinator {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let mut child = Command::new(hopline_bin())
            .args(["coordinator", "--listen", "127.0.0.1:0", "--token-file"])
            .arg(&token)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, stderr) = mpsc::channel();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_string();
        assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{url}");
        Coordinator { child, url, stderr, _dir: dir }
    }

    fn jobs(&self) -> String {
        format!("{}/v1/jobs", self.url)
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn submit(coordinator: &Coordinator, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut request = client()
        .post(coordinator.jobs())
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(r#"{"config_name":"baseline.yml","config":"app: fund_load\n","input":"/data/in.txt"}"#);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().unwrap()
}

fn json(response: reqwest::blocking::Response) -> serde_json::Value {
    serde_json::from_str(&response.text().unwrap()).unwrap()
}

/// One SSE event as read: (id, event name, data).
type SseEvent = (Option<u64>, String, String);

/// Follows a job's stream on a thread; events arrive on the channel, and the channel closes
/// when the stream ends.
fn follow(url: String, last_event_id: Option<u64>) -> mpsc::Receiver<SseEvent> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut request = Client::builder().build().unwrap().get(url);
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let (mut id, mut name, mut data) = (None, String::new(), String::new());
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { return };
            if line.is_empty() {
                if !name.is_empty() {
                    let _ = tx.send((id.take(), std::mem::take(&mut name), std::mem::take(&mut data)));
                }
            } else if let Some(value) = line.strip_prefix("id: ") {
                id = value.parse().ok();
            } else if let Some(value) = line.strip_prefix("event: ") {
                name = value.to_string();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push_str(value);
            }
        }
    });
    rx
}

fn next(rx: &mpsc::Receiver<SseEvent>) -> SseEvent {
    rx.recv_timeout(Duration::from_secs(30)).expect("an event within 30 s")
}

#[test]
fn submitting_needs_the_token_and_gives_a_queued_job_with_its_correlation_id() {
    let coordinator = Coordinator::start(&[]);
    let without = client().post(coordinator.jobs()).body("{}").send().unwrap();
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(without.headers()["www-authenticate"], "Bearer");
    let wrong = client().post(coordinator.jobs()).header("authorization", format!("Bearer {TOKEN}x")).body("{}").send();
    assert_eq!(wrong.unwrap().status(), StatusCode::UNAUTHORIZED);

    let response = submit(&coordinator, &[("x-correlation-id", "0af76519-16cd-43dd-8448-eb211c80319c")]);
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-correlation-id"], "0af7651916cd43dd8448eb211c80319c");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let job = json(response);
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "a 128-bit id");
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(job["state"], "queued");
    assert_eq!(job["config"], "baseline.yml");
    assert_eq!(job["correlation_id"], "0af7651916cd43dd8448eb211c80319c");

    let generated = json(submit(&coordinator, &[]));
    assert_eq!(generated["correlation_id"].as_str().unwrap().len(), 32, "one is made when none is sent");
    assert_ne!(generated["id"], job["id"]);

    let unlisted = client().get(coordinator.jobs()).send().unwrap();
    assert_eq!(unlisted.status(), StatusCode::UNAUTHORIZED, "the list of ids needs the token");
    let listed =
        json(client().get(coordinator.jobs()).header("authorization", format!("Bearer {TOKEN}")).send().unwrap());
    let ids: Vec<&str> = listed["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str(), generated["id"].as_str().unwrap()], "oldest first");
    let viewed = json(client().get(format!("{}/{id}", coordinator.jobs())).send().unwrap());
    assert_eq!(viewed["id"], job["id"]);
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let coordinator = Coordinator::start(&[]);
    let bad_correlation = submit(&coordinator, &[("x-correlation-id", "not-a-correlation-id")]);
    assert_eq!(bad_correlation.status(), StatusCode::BAD_REQUEST);
    assert!(json(bad_correlation)["error"].as_str().unwrap().starts_with("x-correlation-id: expected 32 hex digits"));
    let bad_traceparent = submit(&coordinator, &[("traceparent", "00-0000-xyz-01")]);
    assert_eq!(bad_traceparent.status(), StatusCode::BAD_REQUEST);
    assert!(json(bad_traceparent)["error"].as_str().unwrap().starts_with("traceparent: expected a W3C"));

    let post = |body: String| {
        client().post(coordinator.jobs()).header("authorization", format!("Bearer {TOKEN}")).body(body).send().unwrap()
    };
    let not_json = post("config: x".into());
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert!(json(not_json)["error"].as_str().unwrap().contains("JSON object with `config`"));
    let unknown_key = post(r#"{"config":"app: x","cofnig_name":"y"}"#.into());
    assert_eq!(unknown_key.status(), StatusCode::BAD_REQUEST);
    let empty = post(r#"{"config":"  "}"#.into());
    assert_eq!(json(empty)["error"], "config: the pipeline config's text is empty");
    let huge = post(format!(r#"{{"config":"{}"}}"#, "x".repeat(2 << 20)));
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let unknown = client().get(format!("{}/{}", coordinator.jobs(), "0".repeat(32))).send().unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let malformed = client().get(format!("{}/../etc", coordinator.jobs())).send().unwrap();
    assert_eq!(malformed.status(), StatusCode::NOT_FOUND);
    let events = client().get(format!("{}/{}/events", coordinator.jobs(), "f".repeat(32))).send().unwrap();
    assert_eq!(events.status(), StatusCode::NOT_FOUND);
}

#[test]
fn followers_see_each_event_once_in_order_and_the_stream_ends_after_the_terminal_event() {
    let coordinator = Coordinator::start(&[]);
    let id = json(submit(&coordinator, &[]))["id"].as_str().unwrap().to_string();
    let events_url = format!("{}/{id}/events", coordinator.jobs());
    let first = follow(events_url.clone(), None);
    let second = follow(events_url.clone(), None);
    for rx in [&first, &second] {
        let (event_id, name, data) = next(rx);
        assert_eq!((event_id, name.as_str()), (Some(1), "state"));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&data).unwrap()["state"], "queued");
    }

    let unauthorized = client().delete(format!("{}/{id}", coordinator.jobs())).send().unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    let cancel = || {
        client()
            .delete(format!("{}/{id}", coordinator.jobs()))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
    };
    let cancelled = cancel().unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_eq!(json(cancelled)["state"], "cancelled");
    for rx in [&first, &second] {
        let (event_id, name, data) = next(rx);
        assert_eq!((event_id, name.as_str()), (Some(2), "cancelled"));
        assert!(data.contains("cancelled by the client"), "{data}");
        assert!(rx.recv_timeout(Duration::from_secs(30)).is_err(), "the stream ends after its terminal event");
    }
    let again = cancel().unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(json(again)["error"].as_str().unwrap().ends_with("is cancelled: there is nothing to cancel"));

    // A client coming back after event 1 gets event 2 alone; after event 2, nothing, and the
    // stream ends at once.
    let resumed = follow(events_url.clone(), Some(1));
    assert_eq!(next(&resumed).0, Some(2));
    assert!(resumed.recv_timeout(Duration::from_secs(30)).is_err());
    let caught_up = follow(events_url, Some(2));
    assert!(caught_up.recv_timeout(Duration::from_secs(30)).is_err());
    let view = json(client().get(format!("{}/{id}", coordinator.jobs())).send().unwrap());
    assert_eq!(view["last_event_id"], 2);
    assert!(view["finished_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_quiet_stream_stays_open_with_comments_and_finished_jobs_are_removed_after_the_retention() {
    let coordinator = Coordinator::start(&["--retention", "2s", "--keep-alive", "100ms"]);
    let id = json(submit(&coordinator, &[]))["id"].as_str().unwrap().to_string();
    // A raw read, where keep-alive comments show: the queued job's stream stays open, with
    // a comment every 100 ms, for as long as the job is quiet.
    let response = client().get(format!("{}/{id}/events", coordinator.jobs())).send().unwrap();
    let mut reader = BufReader::new(response);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "id: 1\n");
    let mut comments = 0;
    while comments < 5 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the quiet stream stays open");
        if line == ": keep-alive\n" {
            comments += 1;
        }
    }
    let cancelled = client()
        .delete(format!("{}/{id}", coordinator.jobs()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("event: cancelled"), "{rest}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client().get(format!("{}/{id}", coordinator.jobs())).send().unwrap().status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < deadline, "the finished job was never removed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_coordinator_needs_a_token_and_never_prints_it() {
    let output = Command::new(hopline_bin())
        .args(["coordinator", "--listen", "127.0.0.1:0"])
        .env_remove("HOPLINE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no token: give --token-file PATH or set HOPLINE_TOKEN"), "{stderr}");

    // SIGTERM stops a running coordinator cleanly, with no token in anything it printed.
    let mut coordinator = Coordinator::start(&[]);
    assert_eq!(submit(&coordinator, &[]).status(), StatusCode::CREATED);
    // SAFETY: kill(2) on the pid of a child this test started; no memory involved.
    unsafe { libc::kill(coordinator.child.id() as i32, libc::SIGTERM) };
    let status = coordinator.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let stderr = coordinator.stderr.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(!stderr.contains(TOKEN), "{stderr}");
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A running agent for `coordinator`, killed when dropped.
struct Agent {
    child: Child,
}

impl Agent {
    fn start(coordinator: &Coordinator) -> Agent {
        Agent::start_with(coordinator, &[])
    }

    fn start_with(coordinator: &Coordinator, extra: &[&str]) -> Agent {
        let token = coordinator._dir.path().join("token");
        let mut child = Command::new(hopline_bin())
            .args([
                "agent",
                "--coordinator",
                &coordinator.url,
                "--heartbeat",
                "100ms",
                "--stop-grace",
                "5s",
                "--token-file",
            ])
            .arg(&token)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
        // Ready once the coordinator has heard from it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while json(
            client()
                .get(format!("{}/v1/agents", coordinator.url))
                .header("authorization", format!("Bearer {TOKEN}"))
                .send()
                .unwrap(),
        )["agents"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "the agent never registered");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn submit_command(coordinator: &Coordinator, config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(hopline_bin());
    command
        .arg("submit")
        .arg(config)
        .args(["--coordinator", &coordinator.url, "--token-file"])
        .arg(coordinator._dir.path().join("token"))
        .args(args);
    command
}

/// Every event of a finished job's stream: (name, data as JSON).
fn all_events(coordinator: &Coordinator, id: &str) -> Vec<(String, serde_json::Value)> {
    follow(format!("{}/{id}/events", coordinator.jobs()), None)
        .iter()
        .map(|(_, name, data)| (name, serde_json::from_str(&data).unwrap()))
        .collect()
}

fn wait_for_state(coordinator: &Coordinator, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while json(client().get(format!("{}/{id}", coordinator.jobs())).send().unwrap())["state"] != state {
        assert!(Instant::now() < deadline, "job {id} never became {state}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_job_runs_on_an_agent_and_submit_follows_it_live_to_success() {
    let coordinator = Coordinator::start(&[]);
    let _agent = Agent::start(&coordinator);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.txt");
    let input = repo().join("tests/fixtures/fund_load/input.txt");
    let config = repo().join("pipelines/fund_load/multiprocess/baseline.yml");
    let correlation = "0af7651916cd43dd8448eb211c80319c";
    let submitted = submit_command(
        &coordinator,
        &config,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--correlation-id",
            correlation,
            "--follow",
        ],
    )
    .output()
    .unwrap();
    let shown = String::from_utf8_lossy(&submitted.stdout);
    assert!(submitted.status.success(), "{shown}\n{}", String::from_utf8_lossy(&submitted.stderr));
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(repo().join("tests/fixtures/fund_load/output.txt")).unwrap()
    );
    for expected in [
        "job queued",
        "job running on agent",
        "`ingest` is ready",
        "`egress` is done: 1,000 in, 1,000 out",
        "job succeeded",
    ] {
        assert!(shown.contains(expected), "{expected:?} missing from:\n{shown}");
    }
    assert!(!shown.contains('\u{1b}'), "no colours off a terminal");

    let jobs =
        json(client().get(coordinator.jobs()).header("authorization", format!("Bearer {TOKEN}")).send().unwrap());
    let job = &jobs["jobs"][0];
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["correlation_id"], correlation);
    let id = job["id"].as_str().unwrap();
    let events = all_events(&coordinator, id);
    let narration: Vec<&serde_json::Value> = events.iter().filter(|(n, _)| n == "narration").map(|(_, d)| d).collect();
    assert!(narration.len() >= 10, "{events:?}");
    let processes: std::collections::BTreeSet<String> =
        narration.iter().map(|n| n["actor"]["pid"].to_string()).collect();
    assert_eq!(processes.len(), 4, "the supervisor and three workers narrate through the agent");
    assert!(narration.iter().all(|n| n["correlation_id"] == correlation && n["job"] == id));
    assert!(
        events.iter().any(|(n, d)| n == "log" && d["stream"] == "stderr"),
        "the run's summary arrives as log lines"
    );
    assert_eq!(events.last().unwrap().0, "succeeded");
}

#[test]
fn a_failing_run_fails_its_job_with_the_root_cause_and_submit_says_so() {
    let coordinator = Coordinator::start(&[]);
    let _agent = Agent::start(&coordinator);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.ndjson");
    std::fs::write(&input, (1..=20).map(|i| format!("{{\"n\":{i}}}\n")).collect::<String>()).unwrap();
    let config = dir.path().join("fault.yml");
    std::fs::write(
        &config,
        "app: probe\nscenario: drill\nruntime:\n  profile: multiprocess\n  batch_size: 1\n  process_groups:\n    - { name: a, nodes: [pass] }\n    - { name: b, nodes: [fault] }\nsource: { kind: ndjson, path: in.ndjson, group: a }\nsink: { kind: ndjson, path: out.ndjson, group: b }\nnodes:\n  - kind: pass\n  - kind: fault\n    params: { at: 3, action: error }\n",
    )
    .unwrap();
    let out = dir.path().join("out.ndjson");
    let submitted = submit_command(
        &coordinator,
        &config,
        &["-i", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--follow"],
    )
    .output()
    .unwrap();
    let shown = String::from_utf8_lossy(&submitted.stdout);
    assert_eq!(submitted.status.code(), Some(1), "{shown}");
    let last = shown.lines().last().unwrap();
    assert!(last.starts_with("job failed: ") && last.contains("fault") && last.contains("event 3"), "{shown}");
}

#[test]
fn cancelling_a_running_job_stops_its_run_and_ends_it_cancelled() {
    let coordinator = Coordinator::start(&[]);
    let _agent = Agent::start(&coordinator);
    let (_dir, config, input, out) = slow_job(2000, 50);
    let id = submit_id(&coordinator, &config, &input, &out);
    wait_for_state(&coordinator, &id, "running");
    // Wait for the run to say it started: its pid comes with its narration.
    let stream = follow(format!("{}/{id}/events", coordinator.jobs()), None);
    let pid = loop {
        let (_, name, data) = next(&stream);
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        if name == "narration" && data["action"] == "run.start" {
            break data["actor"]["pid"].as_u64().unwrap() as u32;
        }
    };
    let cancelled = client()
        .delete(format!("{}/{id}", coordinator.jobs()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    let terminal = loop {
        let (_, name, data) = next(&stream);
        if ["succeeded", "failed", "cancelled"].contains(&name.as_str()) {
            break (name, data);
        }
    };
    assert_eq!(terminal.0, "cancelled", "{terminal:?}");
    assert!(terminal.1.contains("cancelled by the client"), "{}", terminal.1);
    assert!(std::fs::metadata(format!("/proc/{pid}")).is_err(), "the run's process is gone");
}

#[test]
fn an_agent_that_stops_heartbeating_has_its_jobs_failed_with_the_reason() {
    let coordinator = Coordinator::start(&["--agent-timeout", "1s"]);
    let mut agent = Agent::start(&coordinator);
    let (_dir, config, input, out) = slow_job(2000, 50);
    let id = submit_id(&coordinator, &config, &input, &out);
    wait_for_state(&coordinator, &id, "running");
    let _ = agent.child.kill();
    let _ = agent.child.wait();
    wait_for_state(&coordinator, &id, "failed");
    let job = json(client().get(format!("{}/{id}", coordinator.jobs())).send().unwrap());
    assert!(job["reason"].as_str().unwrap().contains("stopped heartbeating"), "{job}");
}

#[test]
fn one_trace_links_the_client_the_coordinator_the_agent_and_the_run() {
    let receiver = otlp_receiver::Receiver::start(otlp_receiver::Behaviour::Accept).unwrap();
    let endpoint = receiver.endpoint();
    let coordinator = Coordinator::start(&["--trace-otlp", &endpoint]);
    let _agent = Agent::start_with(&coordinator, &["--trace-otlp", &endpoint]);
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo().join("pipelines/fund_load/baseline.yml")).unwrap();
    let traced = shipped.replacen(
        "runtime:\n",
        &format!(
            "runtime:\n  observability:\n    tracing:\n      exporters: [{{ otlp: {{ endpoint: \"{endpoint}\" }} }}]\n"
        ),
        1,
    );
    let config = dir.path().join("traced.yml");
    std::fs::write(&config, traced).unwrap();
    let input = repo().join("tests/fixtures/fund_load/input.txt");
    let output = dir.path().join("out.txt");
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let submitted = submit_command(
        &coordinator,
        &config,
        &["-i", input.to_str().unwrap(), "-o", output.to_str().unwrap(), "--follow"],
    )
    .env("TRACEPARENT", caller)
    .output()
    .unwrap();
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stdout));
    // 1,000 events of 7 spans, the run's, the agent's and the coordinator's.
    let spans = receiver.wait_for_spans(7_003, Duration::from_secs(60)).unwrap();
    let job_span = |service: &str| {
        spans
            .iter()
            .find(|s| s.name == "job" && s.service_name() == Some(service))
            .unwrap_or_else(|| panic!("no job span from {service}"))
    };
    let coordinator_span = job_span("hopline-coordinator");
    let agent_span = job_span("hopline-agent");
    let run = spans.iter().find(|s| s.name == "run").unwrap();
    assert_eq!(coordinator_span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "the client's trace");
    assert_eq!(coordinator_span.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(agent_span.trace_id, coordinator_span.trace_id);
    assert_eq!(agent_span.parent_span_id, coordinator_span.span_id);
    assert_eq!(run.trace_id, coordinator_span.trace_id);
    assert_eq!(run.parent_span_id, agent_span.span_id);
    let correlation = coordinator_span.attribute("hopline.correlation_id").unwrap();
    assert!(spans.iter().all(|s| s.attribute("hopline.correlation_id") == Some(correlation)), "every span carries it");
    let roots: Vec<_> = spans.iter().filter(|s| s.name == "source").collect();
    assert_eq!(roots.len(), 1000);
    assert!(roots.iter().all(|r| r.links.first().is_some_and(|l| l.span_id == run.span_id)), "events link to the run");
}

#[test]
fn agents_named_in_the_configuration_are_found_by_their_health() {
    // The agent's port first, so the coordinator can be told of it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let coordinator = Coordinator::start(&["--agent", &format!("static-a={url}")]);
    let _agent = Agent::start_with(&coordinator, &["--listen", &format!("127.0.0.1:{port}"), "--name", "self-named"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let agents = json(
            client()
                .get(format!("{}/v1/agents", coordinator.url))
                .header("authorization", format!("Bearer {TOKEN}"))
                .send()
                .unwrap(),
        );
        let names: Vec<&str> =
            agents["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        if names.contains(&"static-a") {
            break;
        }
        assert!(Instant::now() < deadline, "the configured agent was never found: {names:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let health = json(client().get(format!("{url}/v1/health")).send().unwrap());
    assert_eq!(health["name"], "self-named");
}

#[test]
fn submit_refuses_clearly_when_the_coordinator_says_no_or_is_not_there() {
    let coordinator = Coordinator::start(&[]);
    let config = repo().join("pipelines/fund_load/baseline.yml");
    let refused = submit_command(&coordinator, &config, &["--correlation-id", "0af7651916cd43dd8448eb211c80319c"])
        .env("TRACEPARENT", "not a traceparent")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("the coordinator refused the job (400): traceparent: expected a W3C"), "{stderr}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nobody = Command::new(hopline_bin())
        .arg("submit")
        .arg(&config)
        .args(["--coordinator", &format!("http://127.0.0.1:{port}"), "--token-file"])
        .arg(coordinator._dir.path().join("token"))
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("cannot reach the coordinator at http://127.0.0.1:"));
}

#[test]
fn a_client_that_goes_away_changes_nothing_and_another_can_follow_to_the_end() {
    let coordinator = Coordinator::start(&[]);
    let _agent = Agent::start(&coordinator);
    let (_dir, config, input, out) = slow_job(300, 30);
    let id = submit_id(&coordinator, &config, &input, &out);
    {
        // Read the first event, then hang up in the middle of the stream.
        let response = client().get(format!("{}/{id}/events", coordinator.jobs())).send().unwrap();
        let mut line = String::new();
        BufReader::new(response).read_line(&mut line).unwrap();
        assert_eq!(line, "id: 1\n");
    }
    let stream = follow(format!("{}/{id}/events", coordinator.jobs()), None);
    let last = stream.iter().last().expect("events");
    assert_eq!(last.1, "succeeded", "{last:?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 300);
}

#[test]
fn a_coordinator_stops_promptly_even_with_followers_connected() {
    let mut coordinator = Coordinator::start(&[]);
    let id = json(submit(&coordinator, &[]))["id"].as_str().unwrap().to_string();
    let response = client().get(format!("{}/{id}/events", coordinator.jobs())).send().unwrap();
    let mut reader = BufReader::new(response);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "id: 1\n");
    // SAFETY: kill(2) on the pid of a child this test started; no memory involved.
    unsafe { libc::kill(coordinator.child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = coordinator.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the coordinator waited for its followers");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(!rest.contains("event: cancelled"), "the stream just ends: {rest}");
}

/// A probe job that takes a while: `lines` events, a `every_ms` ms sleep every ten. Returns
/// its folder (kept alive by the caller), config, input and output paths.
fn slow_job(lines: usize, every_ms: u64) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.ndjson");
    std::fs::write(&input, (1..=lines).map(|i| format!("{{\"n\":{i}}}\n")).collect::<String>()).unwrap();
    let config = dir.path().join("slow.yml");
    std::fs::write(
        &config,
        format!(
            "app: probe\nscenario: slow\nruntime: {{ batch_size: 10 }}\nsource: {{ kind: ndjson, path: in.ndjson }}\nsink: {{ kind: ndjson, path: out.ndjson }}\nnodes:\n  - kind: delay\n    params: {{ every_ms: {every_ms}, every: 10 }}\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("out.ndjson");
    (dir, config, input, out)
}

/// Submits a job without `--follow`: the command prints the job's id alone, and succeeds.
fn submit_id(coordinator: &Coordinator, config: &Path, input: &Path, out: &Path) -> String {
    let submitted = submit_command(coordinator, config, &["-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let id = String::from_utf8(submitted.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 32, "without --follow, the id alone: {id:?}");
    id
}
