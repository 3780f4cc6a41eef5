//! The summary's figures, checked exactly against the fixture's known durations.

use hopline_trace::otlp::span::Link;
use hopline_trace::{
    ErrorSpan, HopStats, LatencyStats, MergeOptions, NodeStats, PathStep, SpanId, Summary, TraceId, merge, summary,
};

use crate::fixture::{self, n, span_id, trace_id};

const US: u64 = 1_000;

fn stats(count: usize, p50: u64, p99: u64, max: u64) -> LatencyStats {
    LatencyStats { count, p50_ns: p50 * US, p99_ns: p99 * US, max_ns: max * US }
}

fn node(node: &str, group: &str, latency: LatencyStats, errors: usize) -> NodeStats {
    NodeStats { node: node.into(), process_group: Some(group.into()), latency, errors }
}

fn hop(route_hop: u64, from: &str, to: &str, latency: Option<LatencyStats>) -> HopStats {
    HopStats {
        route_hop,
        from: from.into(),
        to: to.into(),
        latency,
        unpaired_producers: 0,
        unpaired_consumers: 0,
        clock_skewed: 0,
    }
}

fn step(node: &str, group: &str) -> PathStep {
    PathStep { node: node.into(), process_group: Some(group.into()) }
}

fn summarise(inputs: Vec<hopline_trace::otlp::TracesData>, slowest: usize) -> Summary {
    summary(&merge(inputs, &MergeOptions::default()).spans, slowest)
}

#[test]
fn figures_per_node_per_hop_errors_and_slowest_traces_are_exact() {
    let summary = summarise(fixture::three_process_run().all(), 2);
    assert_eq!((summary.traces, summary.spans, summary.processes), (3, 30, 3));
    assert_eq!(
        summary.nodes,
        vec![
            node("parse", "ingest", stats(3, 20, 30, 30), 0),
            node("time_keys", "ingest", stats(3, 5, 5, 5), 0),
            node("idempotency", "ingest", stats(3, 4, 4, 4), 0),
            node("features", "policy", stats(3, 8, 8, 8), 0),
            node("policies", "policy", stats(3, 40, 60, 60), 1),
            node("format", "egress", stats(2, 6, 7, 7), 0),
        ]
    );
    assert_eq!(
        summary.hops,
        vec![
            hop(1, "ingest", "policy", Some(stats(3, 160, 170, 170))),
            hop(2, "policy", "egress", Some(stats(2, 111, 112, 112))),
        ]
    );
    assert_eq!(
        summary.errors,
        vec![ErrorSpan {
            seq: Some(3),
            node: Some("policies".into()),
            process_group: Some("policy".into()),
            name: "policies".into(),
            message: fixture::FAILURE.into(),
            trace_id: TraceId::from_bytes(&trace_id(3)).unwrap(),
            span_id: SpanId::from_bytes(&span_id(3, n::POLICIES)).unwrap(),
        }]
    );
    let path = vec![
        step("parse", "ingest"),
        step("time_keys", "ingest"),
        step("idempotency", "ingest"),
        step("features", "policy"),
        step("policies", "policy"),
        step("format", "egress"),
    ];
    let slowest: Vec<_> =
        summary.slowest.iter().map(|t| (t.seq, t.duration_ns / US, t.root_duration_ns / US, t.path.clone())).collect();
    assert_eq!(slowest, vec![(Some(2), 427, 75, path.clone()), (Some(1), 426, 75, path)]);
    assert_eq!(summary.slowest[0].trace_id, TraceId::from_bytes(&trace_id(2)).unwrap());
    assert_eq!(summary.traces_without_root, 0);
}

#[test]
fn the_summary_reads_as_text() {
    let text = summarise(fixture::three_process_run().all(), 3).to_string();
    let path = "parse (ingest) → time_keys (ingest) → idempotency (ingest) → features (policy) → policies (policy)";
    let expected = format!(
        "\
forensic trace: 3 traces, 30 spans, 3 processes
nodes (latency: span duration):
  parse (ingest): 3 spans; p50 20.000 µs, p99 30.000 µs, max 30.000 µs
  time_keys (ingest): 3 spans; p50 5.000 µs, p99 5.000 µs, max 5.000 µs
  idempotency (ingest): 3 spans; p50 4.000 µs, p99 4.000 µs, max 4.000 µs
  features (policy): 3 spans; p50 8.000 µs, p99 8.000 µs, max 8.000 µs
  policies (policy): 3 spans (1 error); p50 40.000 µs, p99 60.000 µs, max 60.000 µs
  format (egress): 2 spans; p50 6.000 µs, p99 7.000 µs, max 7.000 µs
hops (latency: producer start to consumer end):
  hop 1 ingest → policy: 3 pairs; p50 160.000 µs, p99 170.000 µs, max 170.000 µs
  hop 2 policy → egress: 2 pairs; p50 111.000 µs, p99 112.000 µs, max 112.000 µs
errors (1):
  event 3: node policies (policy): {failure} [trace 0af7651916cd43dd8448eb211c803103 span b7ad6b7169200308]
slowest traces (root span start to last span end):
  1. trace 0af7651916cd43dd8448eb211c803102 (event 2): 427.000 µs (root span 75.000 µs): {path} → format (egress)
  2. trace 0af7651916cd43dd8448eb211c803101 (event 1): 426.000 µs (root span 75.000 µs): {path} → format (egress)
  3. trace 0af7651916cd43dd8448eb211c803103 (event 3): 290.000 µs (root span 75.000 µs): {path}
",
        failure = fixture::FAILURE,
    );
    assert_eq!(text, expected);
}

#[test]
fn the_summary_does_not_depend_on_input_order() {
    let run = fixture::three_process_run();
    let mut reversed = run.all();
    reversed.reverse();
    let spans = merge(run.all(), &MergeOptions::default()).spans;
    let mut shuffled = spans.clone();
    shuffled.reverse();
    shuffled.swap(0, 7);
    assert_eq!(summary(&spans, 3), summary(&shuffled, 3));
    assert_eq!(summarise(run.all(), 3), summarise(reversed, 3));
}

#[test]
fn hops_whose_other_side_was_lost_are_counted_not_paired() {
    let mut run = fixture::three_process_run();
    run.policy.remove(1);
    let summary = summarise(run.all(), 3);
    let mut first = hop(1, "ingest", "policy", Some(stats(2, 150, 170, 170)));
    first.unpaired_producers = 1;
    let mut second = hop(2, "policy", "egress", Some(stats(1, 111, 111, 111)));
    second.unpaired_consumers = 1;
    assert_eq!(summary.hops, vec![first, second]);
    let text = summary.to_string();
    assert!(text.contains("hop 1 ingest → policy: 2 pairs; p50 150.000 µs, p99 170.000 µs, max 170.000 µs; 1 producer without consumer\n"), "{text}");
    assert!(text.contains("hop 2 policy → egress: 1 pair; p50 111.000 µs, p99 111.000 µs, max 111.000 µs; 1 consumer without producer\n"), "{text}");
}

#[test]
fn a_trace_whose_root_was_lost_is_counted_not_ranked() {
    let mut run = fixture::three_process_run();
    run.ingest.remove(2);
    let summary = summarise(run.all(), 5);
    assert_eq!(summary.traces, 3);
    assert_eq!(summary.slowest.len(), 2);
    assert_eq!(summary.traces_without_root, 1);
    assert_eq!(summary.errors[0].seq, Some(3), "the error keeps its event through its own hopline.seq");
    assert!(summary.to_string().ends_with("  (1 trace without a root span, not ranked)\n"));
}

#[test]
fn a_consumer_linked_to_its_producer_pairs_with_it() {
    let mut run = fixture::three_process_run();
    let consumer = &mut run.policy[0].resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(consumer.name, "receive ingest");
    consumer.parent_span_id.clear();
    consumer.links.push(Link { trace_id: trace_id(1), span_id: span_id(1, n::SEND_POLICY), ..Default::default() });
    let summary = summarise(run.all(), 0);
    assert_eq!(summary.hops[0], hop(1, "ingest", "policy", Some(stats(3, 160, 170, 170))));
}

#[test]
fn a_consumer_ending_before_its_producer_started_is_counted_as_clock_skew() {
    let mut run = fixture::three_process_run();
    let consumer = &mut run.policy[0].resource_spans[0].scope_spans[0].spans[0];
    consumer.start_time_unix_nano = fixture::T0;
    consumer.end_time_unix_nano = fixture::T0 + 10 * US;
    let summary = summarise(run.all(), 0);
    // The skewed pair counts 0: latencies 0, 160, 170 µs.
    let mut expected = hop(1, "ingest", "policy", Some(stats(3, 160, 170, 170)));
    expected.clock_skewed = 1;
    assert_eq!(summary.hops[0], expected);
    assert!(summary.to_string().contains("; 1 pair ended before sent (clock skew)"));
}

#[test]
fn no_spans_summarise_to_nothing() {
    let summary = summary(&[], 5);
    assert_eq!(
        summary.to_string(),
        "forensic trace: 0 traces, 0 spans, 0 processes\nnodes (latency: span duration):\n  none\n\
         hops (latency: producer start to consumer end):\n  none\nerrors: none\n\
         slowest traces (root span start to last span end):\n  none\n"
    );
}
