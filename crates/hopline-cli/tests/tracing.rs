//! End-to-end tracing with real processes: `hopline run` (supervisor and workers, or the memory
//! profile) exporting over OTLP/HTTP to a real receiver on an ephemeral port, decoding with the
//! official OTLP definitions; and the forensic trace file read back by `hopline trace`.
//!
//! Each run is held by a [`Running`] guard that kills the supervisor when the test ends, panics
//! included; its workers die with it (they ask the kernel for SIGKILL when their parent dies).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use otlp_receiver::{Behaviour, Protocol, ReceivedSpan, Receiver, SpanKind};

const PATIENCE: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn input() -> PathBuf {
    repo().join("tests/fixtures/fund_load/input.txt")
}

fn expected_output() -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/fund_load/output.txt")).unwrap()
}

fn hopline_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("hopline")
}

/// Writes a copy of a shipped fund_load config into `dir` with `tracing` (YAML lines, indented
/// for `runtime.observability.tracing`) added and the fixture paths made absolute.
fn traced_config(dir: &Path, shipped: &str, tracing: &str) -> PathBuf {
    let source = repo().join("pipelines/fund_load").join(shipped);
    let text = std::fs::read_to_string(&source).unwrap();
    let mut section = String::from("runtime:\n  observability:\n    tracing:\n");
    for line in tracing.lines() {
        section.push_str("      ");
        section.push_str(line);
        section.push('\n');
    }
    let text = text
        .replacen("runtime:\n", &section, 1)
        .replace("path: ../../../tests/fixtures/fund_load/input.txt", &format!("path: {}", input().display()));
    let text = text.replace("path: ../../tests/fixtures/fund_load/input.txt", &format!("path: {}", input().display()));
    let path = dir.join("traced.yml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `hopline run`, killed when dropped.
struct Running(Option<Child>);

impl Running {
    fn start(args: &[&str], config: &Path, envs: &[(&str, &str)]) -> Running {
        let child = Command::new(hopline_bin())
            .arg("run")
            .arg(config)
            .args(args)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_SDK_DISABLED")
            .env_remove("TRACEPARENT")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hopline");
        Running(Some(child))
    }

    /// Waits for the run to end (at most [`PATIENCE`]) and returns its output and how long
    /// it took.
    fn finish(mut self) -> (Output, Duration) {
        let started = Instant::now();
        let mut child = self.0.take().unwrap();
        let pid = child.id();
        let watchdog = std::thread::spawn(move || {
            let deadline = Instant::now() + PATIENCE;
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
                if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                    return;
                }
            }
            // SAFETY: kill(2) on the pid of a child this test started; no memory involved.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        });
        let _ = child.stdin.take();
        let output = child.wait_with_output().unwrap();
        let _ = watchdog;
        (output, started.elapsed())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(config: &Path, args: &[&str]) -> (Output, Duration) {
    Running::start(args, config, &[]).finish()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The spans of each trace, by trace id.
fn by_trace(spans: &[ReceivedSpan]) -> BTreeMap<String, Vec<&ReceivedSpan>> {
    let mut traces: BTreeMap<String, Vec<&ReceivedSpan>> = BTreeMap::new();
    for span in spans {
        traces.entry(span.trace_id.clone()).or_default().push(span);
    }
    traces
}

/// Checks one event's trace through ingest → policy → egress: one root, every parent in the
/// trace, each process's spans from its own resource, and the hop spans paired as producer
/// and consumer with the right attributes.
fn check_event_trace(spans: &[&ReceivedSpan], service: &str) {
    let ids: HashMap<&str, &ReceivedSpan> = spans.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    assert_eq!(ids.len(), spans.len(), "span ids repeat in one trace");
    let roots: Vec<_> = spans.iter().filter(|s| s.is_root()).collect();
    assert_eq!(roots.len(), 1, "one root per event: {spans:#?}");
    let root = roots[0];
    assert_eq!(root.name, "source");
    let seq = root.attribute("hopline.seq").expect("the root carries the event's sequence number");
    assert!(root.attribute("hopline.correlation_id").is_some_and(|c| c.len() == 32));
    assert_eq!(root.links.len(), 1, "the root links to the run span");
    for span in spans {
        if !span.is_root() {
            assert!(ids.contains_key(span.parent_span_id.as_str()), "parent of {} is not in the trace", span.name);
        }
        assert_eq!(span.attribute("hopline.seq"), Some(seq), "{} carries the event's seq", span.name);
        let group = span.resource.get("hopline.process_group").expect("each process names its group");
        assert_eq!(span.service_name(), Some(format!("{service}-{group}").as_str()));
        assert!(span.resource.contains_key("process.pid") && span.resource.contains_key("service.instance.id"));
    }
    let groups: BTreeSet<&str> = spans.iter().map(|s| s.resource["hopline.process_group"].as_str()).collect();
    assert_eq!(groups, BTreeSet::from(["egress", "ingest", "policy"]), "the event crossed three processes");
    let node_groups: Vec<(&str, &str)> = spans
        .iter()
        .filter_map(|s| Some((s.attribute("hopline.node")?, s.resource["hopline.process_group"].as_str())))
        .collect();
    for (node, group) in [
        ("parse", "ingest"),
        ("time_keys", "ingest"),
        ("idempotency", "ingest"),
        ("features", "policy"),
        ("policies", "policy"),
        ("format", "egress"),
    ] {
        assert!(node_groups.contains(&(node, group)), "no span of {node} in {group}: {node_groups:?}");
    }
    for (hop, from, to) in [("1", "ingest", "policy"), ("2", "policy", "egress")] {
        let send = spans
            .iter()
            .find(|s| s.kind == SpanKind::Producer && s.attribute("hopline.route_hop") == Some(hop))
            .unwrap_or_else(|| panic!("no producer span for hop {hop}"));
        assert_eq!(send.name, format!("send {to}"));
        assert_eq!(send.resource["hopline.process_group"], from);
        assert_eq!(send.attribute("messaging.system"), Some("hopline"));
        assert_eq!(send.attribute("messaging.operation.type"), Some("send"));
        assert_eq!(send.attribute("messaging.destination.name"), Some(to));
        let receive = spans
            .iter()
            .find(|s| s.kind == SpanKind::Consumer && s.parent_span_id == send.span_id)
            .unwrap_or_else(|| panic!("no consumer span under hop {hop}'s producer"));
        assert_eq!(receive.resource["hopline.process_group"], to);
        assert_eq!(receive.attribute("hopline.handoff_from"), Some(from));
        assert_eq!(receive.attribute("hopline.route_hop"), Some(hop));
        assert_eq!(receive.attribute("messaging.operation.type"), Some("receive"));
        assert_eq!(receive.parent_is_remote(), Some(true));
        // The next group's node spans hang under the consumer span.
        assert!(spans.iter().any(|s| s.parent_span_id == receive.span_id && s.attribute("hopline.node").is_some()));
    }
    for node in spans.iter().filter(|s| s.attribute("hopline.node").is_some()) {
        assert_eq!(node.attribute("hopline.outcome"), Some("emitted"));
        let group = node.resource["hopline.process_group"].as_str();
        assert_eq!(node.attribute("hopline.process_group"), Some(group));
        let (route_hop, handoff_from) = match group {
            "ingest" => ("0", None),
            "policy" => ("1", Some("ingest")),
            _ => ("2", Some("policy")),
        };
        assert_eq!(node.attribute("hopline.route_hop"), Some(route_hop), "{}", node.name);
        assert_eq!(node.attribute("hopline.handoff_from"), handoff_from, "{}", node.name);
    }
}

fn multiprocess_trace_reaches_the_collector(protocol: &str, expected: Protocol) {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tracing = format!(
        "service_name: fundload-e2e\nexporters:\n  - otlp:\n      endpoint: {}\n      protocol: {protocol}\n      headers: {{ x-tenant: acme, authorization: Bearer e2e-secret }}\n",
        receiver.endpoint()
    );
    let config = traced_config(dir.path(), "multiprocess/baseline.yml", &tracing);
    let (output, _) = run(&config, &["-o", "-"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, expected_output(), "tracing changes nothing in the output");
    let summary = stderr(&output);
    assert!(!summary.contains("e2e-secret"), "a header value was printed:\n{summary}");

    // 1,000 events, each with a root, six node spans and two pairs of hop spans; and the run.
    let spans = receiver.wait_for_spans(11_001, PATIENCE).unwrap();
    assert_eq!(spans.len(), 11_001, "every span arrives once");
    let otlp = format!("otlp {}/v1/traces: 11,001 exported, 0 dropped, 0 failed", receiver.endpoint());
    assert!(summary.contains(&otlp), "{summary}");
    let traces = by_trace(&spans);
    assert_eq!(traces.len(), 1_001, "one trace per event, and the run's");
    let run_traces: Vec<_> = traces.values().filter(|t| t.iter().any(|s| s.name == "run")).collect();
    assert_eq!(run_traces.len(), 1);
    let run_span = run_traces[0][0];
    assert_eq!(run_span.service_name(), Some("fundload-e2e"), "the supervisor's resource");
    let mut seqs = BTreeSet::new();
    for spans in traces.values().filter(|t| t.iter().all(|s| s.name != "run")) {
        check_event_trace(spans, "fundload-e2e");
        let root = spans.iter().find(|s| s.is_root()).unwrap();
        assert_eq!(root.links[0].span_id, run_span.span_id);
        seqs.insert(root.attribute("hopline.seq").unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(seqs, (1..=1000).collect(), "every event has its trace");

    let requests = receiver.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.protocol, Some(expected));
        assert_eq!(request.header("x-tenant"), Some("acme"), "config headers arrive with every export");
        assert_eq!(request.header("authorization"), Some("Bearer e2e-secret"));
        assert_eq!(request.path, otlp_receiver::TRACES_PATH);
    }
}

#[test]
fn every_event_is_one_trace_across_three_processes_over_otlp_protobuf() {
    multiprocess_trace_reaches_the_collector("http/protobuf", Protocol::Protobuf);
}

#[test]
fn every_event_is_one_trace_across_three_processes_over_otlp_json() {
    multiprocess_trace_reaches_the_collector("http/json", Protocol::Json);
}

/// A traced run against a collector that cannot take spans: the output is the same, the run
/// takes about as long as an untraced one, and the summary counts what was lost.
fn a_failing_collector_costs_spans_not_the_run(endpoint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = traced_config(
        dir.path(),
        "multiprocess/baseline.yml",
        &format!("exporters:\n  - otlp: {{ endpoint: {endpoint}, timeout: 2s }}\n"),
    );
    let plain = repo().join("pipelines/fund_load/multiprocess/baseline.yml");
    let (untraced, untraced_time) = run(&plain, &["-o", "-"]);
    assert!(untraced.status.success(), "{}", stderr(&untraced));
    let (output, traced_time) = run(&config, &["-o", "-"]);
    assert!(output.status.success(), "a failing collector fails nothing: {}", stderr(&output));
    assert_eq!(output.stdout, expected_output());
    let summary = stderr(&output);
    let line = summary.lines().find(|l| l.trim_start().starts_with("otlp http")).unwrap_or_else(|| panic!("{summary}"));
    let line = line.split_once(": ").unwrap().1;
    assert!(line.starts_with("0 exported,"), "{line}");
    let lost: u64 = ["dropped", "failed"]
        .iter()
        .map(|what| {
            let before = line.split(&format!(" {what}")).next().unwrap();
            before.rsplit(' ').next().unwrap().replace(',', "").parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(lost, 11_001, "every span is counted as lost: {line}");
    assert!(line.contains("last error"), "{line}");
    // Generous for a loaded 2-core machine, and far below what waiting on the collector
    // would cost (retries and timeouts for every export).
    assert!(
        traced_time < untraced_time + Duration::from_secs(5),
        "traced {traced_time:?} against untraced {untraced_time:?}"
    );
}

#[test]
fn a_collector_on_a_closed_port_costs_spans_not_the_run() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    a_failing_collector_costs_spans_not_the_run(&format!("http://127.0.0.1:{port}"));
}

#[test]
fn a_collector_answering_500_costs_spans_not_the_run() {
    let receiver = Receiver::start(Behaviour::Fail(500)).unwrap();
    a_failing_collector_costs_spans_not_the_run(&receiver.endpoint());
    assert!(!receiver.requests().is_empty(), "the exporter did try");
}

#[test]
fn a_collector_slower_than_its_timeout_costs_spans_not_the_run() {
    let receiver = Receiver::start(Behaviour::Delay(Duration::from_secs(60))).unwrap();
    a_failing_collector_costs_spans_not_the_run(&receiver.endpoint());
}

#[test]
fn the_forensic_trace_of_a_multiprocess_run_holds_every_process_once_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = traced_config(dir.path(), "multiprocess/baseline.yml", "level: debug\nforensic: run.trace.jsonl\n");
    let (output, _) = run(&config, &["-o", "-"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, expected_output());
    let path = dir.path().join("run.trace.jsonl");
    assert!(!dir.path().join("run.trace.jsonl.partial").exists(), "the partial file is removed");
    let summary = stderr(&output);
    // A debug level adds a span inside `policies` for each of the 984 attempts it checks (the
    // 16 repeated ids were declined before it).
    assert!(summary.contains("forensic trace") && summary.contains("11,985 spans, every parent resolved"), "{summary}");

    let text = std::fs::read_to_string(&path).unwrap();
    let mut seen = BTreeSet::new();
    let mut processes = BTreeSet::new();
    let mut parents = Vec::new();
    for line in text.lines() {
        let data: serde_json::Value = serde_json::from_str(line).unwrap();
        for resource in data["resourceSpans"].as_array().unwrap() {
            let attributes = resource["resource"]["attributes"].as_array().unwrap();
            let pid = attributes.iter().find(|a| a["key"] == "process.pid").unwrap()["value"]["intValue"].clone();
            processes.insert(pid.to_string());
            for scope in resource["scopeSpans"].as_array().unwrap() {
                for span in scope["spans"].as_array().unwrap() {
                    let id =
                        (span["traceId"].as_str().unwrap().to_string(), span["spanId"].as_str().unwrap().to_string());
                    assert!(seen.insert(id.clone()), "span {id:?} is written twice");
                    let parent = span["parentSpanId"].as_str().unwrap_or("");
                    if !parent.is_empty() {
                        parents.push((id.0, parent.to_string()));
                    }
                }
            }
        }
    }
    assert_eq!(seen.len(), 11_985);
    assert_eq!(processes.len(), 4, "the supervisor and three workers: {processes:?}");
    for (trace, parent) in &parents {
        assert!(seen.contains(&(trace.clone(), parent.clone())), "parent {parent} of a span in {trace} is missing");
    }

    let summary = Command::new(hopline_bin()).args(["trace", "summary"]).arg(&path).output().unwrap();
    assert!(summary.status.success(), "{}", stderr(&summary));
    let summary = String::from_utf8(summary.stdout).unwrap();
    assert!(summary.contains("hop 1 ingest → policy: 1000 pairs"), "{summary}");
    assert!(summary.contains("hop 2 policy → egress: 1000 pairs"), "{summary}");
    assert!(summary.contains("policies (policy): 1000 spans"), "{summary}");
    assert!(summary.contains("errors: none"), "{summary}");

    let chrome = dir.path().join("chrome.json");
    let export = Command::new(hopline_bin())
        .args(["trace", "export", "--format", "chrome", "-o"])
        .arg(&chrome)
        .arg(&path)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr(&export));
    let chrome: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&chrome).unwrap()).unwrap();
    let events = chrome["traceEvents"].as_array().expect("Chrome trace-event JSON");
    let pids: BTreeSet<String> = events.iter().filter_map(|e| e.get("pid").map(|p| p.to_string())).collect();
    assert_eq!(pids.len(), 4, "one row per process");
    assert!(events.iter().any(|e| e["ph"] == "s") && events.iter().any(|e| e["ph"] == "f"), "flow arrows for hops");
}

#[test]
fn a_failing_node_marks_its_span_as_an_error_with_the_event() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, (1..=5).map(|i| format!("line {i}\n")).collect::<String>()).unwrap();
    let config = dir.path().join("probe.yml");
    std::fs::write(
        &config,
        format!(
            "app: probe\nscenario: fault\nruntime:\n  observability:\n    tracing:\n      exporters: [{{ otlp: {{ endpoint: {} }} }}]\n\
             source: {{ kind: ndjson, path: {} }}\nsink: {{ kind: ndjson, path: out.txt }}\n\
             nodes:\n  - kind: pass\n  - kind: fault\n    params: {{ at: 3, action: error }}\n",
            receiver.endpoint(),
            input.display()
        ),
    )
    .unwrap();
    let (output, _) = run(&config, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    // The run span and events 1 to 3 (root, pass, fault each).
    let spans = receiver.wait_for_spans(10, PATIENCE).unwrap();
    let failed: Vec<_> = spans.iter().filter(|s| s.status_code == otlp_receiver::StatusCode::Error).collect();
    let node = failed.iter().find(|s| s.name == "fault").expect("the fault node's span failed");
    assert_eq!(node.attribute("hopline.seq"), Some("3"));
    assert_eq!(node.attribute("hopline.outcome"), Some("error"));
    assert!(!node.status_message.is_empty());
    let run = failed.iter().find(|s| s.name == "run").expect("the run span failed too");
    assert!(run.status_message.contains("event 3"), "{}", run.status_message);
}

#[test]
fn the_memory_profile_traces_too_and_flags_win_over_the_environment() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = repo().join("pipelines/fund_load/baseline.yml");
    let spans_file = dir.path().join("spans.jsonl");
    let running = Running::start(
        &["-o", "-", "--trace-otlp", &receiver.endpoint(), "--trace-file", spans_file.to_str().unwrap()],
        &config,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"), ("OTEL_SERVICE_NAME", "from-env")],
    );
    let (output, _) = running.finish();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, expected_output());
    let spans = receiver.wait_for_spans(7_001, PATIENCE).unwrap();
    assert_eq!(spans.len(), 7_001);
    assert!(spans.iter().all(|s| s.service_name() == Some("from-env")));
    let traces = by_trace(&spans);
    assert_eq!(traces.len(), 1_001);
    let file_spans: usize = std::fs::read_to_string(&spans_file)
        .unwrap()
        .lines()
        .map(|line| line.matches("\"parentSpanId\"").count())
        .sum();
    assert_eq!(file_spans, 7_001, "the file holds the same spans");
}

#[test]
fn sampling_one_in_ten_keeps_whole_traces_across_processes() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tracing = format!(
        "sampler: {{ name: parentbased_traceidratio, ratio: 0.1 }}\nexporters: [{{ otlp: {{ endpoint: {} }} }}]\n",
        receiver.endpoint()
    );
    let config = traced_config(dir.path(), "multiprocess/baseline.yml", &tracing);
    let (output, _) = run(&config, &["-o", "-"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = stderr(&output);
    let exported: u64 = summary
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("otlp http").and_then(|l| l.split_once(": ")).map(|(_, l)| l))
        .and_then(|l| l.split(' ').next())
        .map(|n| n.replace(',', "").parse().unwrap())
        .unwrap_or_else(|| panic!("{summary}"));
    let spans = receiver.wait_for_spans(exported as usize, PATIENCE).unwrap();
    let traces = by_trace(&spans);
    let events: Vec<_> = traces.values().filter(|t| t.iter().all(|s| s.name != "run")).collect();
    assert!((40..=180).contains(&events.len()), "about 100 of 1000 events sampled: {}", events.len());
    for spans in events {
        check_event_trace(spans, "hopline");
    }
}

#[test]
fn check_shows_where_spans_go_without_header_values() {
    let dir = tempfile::tempdir().unwrap();
    let config = traced_config(
        dir.path(),
        "baseline.yml",
        "exporters:\n  - otlp: { endpoint: \"http://collector:4318\", headers: { authorization: Bearer xyz } }\n",
    );
    let output = Command::new(hopline_bin()).arg("check").arg(&config).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains(
            "tracing: service hopline, sampler parentbased_always_on, level info; spans to OTLP \
             http://collector:4318/v1/traces (http/protobuf, headers authorization)"
        ),
        "{text}"
    );
    assert!(!text.contains("xyz"));
}

#[test]
fn the_stdout_exporter_cannot_share_stdout_with_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = traced_config(dir.path(), "baseline.yml", "exporters: [stdout]\n");
    let (output, _) = run(&config, &["-o", "-"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(stderr(&output).contains("the `stdout` exporter would mix spans into the records"), "{}", stderr(&output));
    let out = dir.path().join("out.txt");
    let (output, _) = run(&config, &["-o", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let spans: usize =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| l.matches("\"parentSpanId\"").count()).sum();
    assert_eq!(spans, 7_001, "spans on stdout, records in the file");
    assert_eq!(std::fs::read(out).unwrap(), expected_output());
}

#[test]
fn a_multiprocess_run_prints_every_process_stdout_spans_in_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let config = traced_config(dir.path(), "multiprocess/baseline.yml", "exporters: [stdout]\n");
    let out = dir.path().join("out.txt");
    let (output, _) = run(&config, &["-o", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(out).unwrap(), expected_output());
    let text = String::from_utf8(output.stdout).unwrap();
    let mut spans = 0;
    let mut groups = BTreeSet::new();
    for line in text.lines() {
        let data: serde_json::Value = serde_json::from_str(line).expect("each line is one whole OTLP JSON object");
        for resource in data["resourceSpans"].as_array().unwrap() {
            for attribute in resource["resource"]["attributes"].as_array().unwrap() {
                if attribute["key"] == "hopline.process_group" {
                    groups.insert(attribute["value"]["stringValue"].as_str().unwrap().to_string());
                }
            }
            spans += resource["scopeSpans"][0]["spans"].as_array().unwrap().len();
        }
    }
    assert_eq!(spans, 11_001);
    assert_eq!(groups.len(), 3, "{groups:?}");
}

#[test]
fn spans_of_a_quiet_stream_are_written_within_the_scheduled_delay_while_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans.jsonl");
    let config = traced_config(
        dir.path(),
        "baseline.yml",
        &format!("exporters: [{{ file: {{ path: {} }} }}]\nbatch: {{ scheduled_delay: 200ms }}\n", spans.display()),
    );
    let child = Command::new(hopline_bin())
        .args(["run", "-q"])
        .arg(&config)
        .args(["-i", "-", "-o", dir.path().join("out.txt").to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Running(Some(child));
    let lines = std::fs::read_to_string(input()).unwrap();
    let mut stdin = guard.0.as_mut().unwrap().stdin.take().unwrap();
    use std::io::Write as _;
    let spans_for = |seq: &str| -> bool {
        std::fs::read_to_string(&spans).unwrap_or_default().contains(&format!("\"intValue\":\"{seq}\""))
    };
    for (i, line) in lines.lines().take(3).enumerate() {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        // The event's spans reach the file while the input stays open.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !spans_for(&(i + 1).to_string()) {
            assert!(Instant::now() < deadline, "no spans for event {} while the run waits for input", i + 1);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(stdin);
    let (output, _) = guard.finish();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_small_file_queue_makes_the_run_wait_for_the_disk_not_for_a_timer() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans.jsonl");
    let config = traced_config(
        dir.path(),
        "baseline.yml",
        &format!(
            "exporters: [{{ file: {{ path: {} }} }}]\nbatch: {{ max_queue_size: 1000, max_export_batch_size: 512, scheduled_delay: 60s }}\n",
            spans.display()
        ),
    );
    let text = std::fs::read_to_string(&config).unwrap().replace("batch_size: 1024", "batch_size: 100");
    std::fs::write(&config, text).unwrap();
    let (output, took) = run(&config, &["-o", "-"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, expected_output());
    // Waiting on the 60 s scheduled delay even once would show.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let written: usize =
        std::fs::read_to_string(&spans).unwrap().lines().map(|l| l.matches("\"parentSpanId\"").count()).sum();
    assert_eq!(written, 7_001);
}

#[test]
fn forensic_spans_cross_the_control_connection_in_bounded_lines_whatever_the_export_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = traced_config(
        dir.path(),
        "multiprocess/baseline.yml",
        "forensic: run.trace.jsonl\nbatch: { max_queue_size: 1000000, max_export_batch_size: 1000000 }\n",
    );
    // 2,000 events: the source group alone holds 10,000 spans, about 6.5 MB of OTLP JSON,
    // more than a control frame may carry (4 MiB), when the run ends and flushes them at once.
    let doubled = dir.path().join("doubled.txt");
    std::fs::write(&doubled, std::fs::read_to_string(input()).unwrap().repeat(2)).unwrap();
    let (output, _) = run(&config, &["-i", doubled.to_str().unwrap(), "-o", "/dev/null"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("22,001 spans, every parent resolved"), "{}", stderr(&output));
}

#[test]
fn a_run_under_a_traceparent_joins_the_callers_trace() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let config = repo().join("pipelines/fund_load/baseline.yml");
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let running =
        Running::start(&["-o", "/dev/null", "--trace-otlp", &receiver.endpoint()], &config, &[("TRACEPARENT", caller)]);
    let (output, _) = running.finish();
    assert!(output.status.success(), "{}", stderr(&output));
    let spans = receiver.wait_for_spans(7_001, PATIENCE).unwrap();
    let run = spans.iter().find(|s| s.name == "run").unwrap();
    assert_eq!(run.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(run.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(run.parent_is_remote(), Some(true));
}
