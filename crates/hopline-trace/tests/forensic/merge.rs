//! Merging the spans of three processes: repeats, lost spans, debug spans, resources kept.

use hopline_trace::otlp::any_value::Value;
use hopline_trace::{MergeOptions, SpanId, SpanLevel, TraceId, merge};

use crate::fixture::{self, n, span_id, trace_id};

fn ids(seq: u8, span: u8) -> (TraceId, SpanId) {
    (TraceId::from_bytes(&trace_id(seq)).unwrap(), SpanId::from_bytes(&span_id(seq, span)).unwrap())
}

#[test]
fn a_worker_that_flushed_twice_leaves_one_copy_of_each_span() {
    let run = fixture::three_process_run();
    let mut inputs = run.all();
    inputs.push(run.ingest[1].clone());
    inputs.extend(run.egress.clone());
    let report = merge(inputs, &MergeOptions { level: SpanLevel::Debug });
    assert_eq!(report.spans.len(), fixture::SPANS);
    assert_eq!(report.duplicates_dropped, 5 + 4);
    assert!(report.conflicting_duplicates.is_empty());
    assert!(report.unresolved_parents.is_empty());
    assert!(report.malformed_spans.is_empty());
}

#[test]
fn every_span_keeps_the_process_that_recorded_it() {
    let report = merge(fixture::three_process_run().all(), &MergeOptions::default());
    for span in &report.spans {
        let expected = match span.span().name.as_str() {
            "source" | "parse" | "time_keys" | "idempotency" | "send policy" => 0,
            "receive ingest" | "features" | "policies" | "send egress" => 1,
            "receive policy" | "format" => 2,
            other => panic!("unexpected span {other}"),
        };
        let origin = span.origin();
        assert_eq!(origin.process_group().as_deref(), Some(fixture::GROUPS[expected]), "{}", span.span().name);
        assert_eq!(origin.pid(), Some(fixture::PIDS[expected] as u64));
        assert_eq!(origin.service_name().as_deref(), Some("hopline"));
        let instance = origin.resource.attributes.iter().find(|kv| kv.key == "service.instance.id").unwrap();
        let expected_instance = format!("5f0c9a2e-run-{}", fixture::GROUPS[expected]);
        assert_eq!(instance.value.as_ref().unwrap().value, Some(Value::StringValue(expected_instance)));
        assert_eq!(origin.scope.name, "hopline-runtime");
    }
}

#[test]
fn spans_from_many_lines_of_one_process_share_one_origin() {
    let report = merge(fixture::three_process_run().all(), &MergeOptions::default());
    let mut distinct: Vec<_> = report.spans.iter().map(|span| std::sync::Arc::as_ptr(span.origin())).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
}

#[test]
fn debug_spans_are_left_out_unless_the_level_is_debug() {
    let run = fixture::three_process_run();
    let info = merge(run.all(), &MergeOptions { level: SpanLevel::Info });
    assert_eq!(info.spans.len(), fixture::SPANS - 1);
    assert_eq!(info.debug_spans_dropped, 1);
    assert!(info.spans.iter().all(|span| span.span().name != "lookup customer window"));
    assert!(info.unresolved_parents.is_empty());

    let debug = merge(run.all(), &MergeOptions { level: SpanLevel::Debug });
    assert_eq!(debug.spans.len(), fixture::SPANS);
    assert_eq!(debug.debug_spans_dropped, 0);
    let lookup = debug.spans.iter().find(|span| span.span().name == "lookup customer window").unwrap();
    assert!(lookup.is_debug());
}

#[test]
fn parents_lost_with_a_process_s_spans_are_reported() {
    let mut run = fixture::three_process_run();
    // The policy worker's spans for event 2 never arrived, and one of event 1's egress spans
    // names a parent no process recorded.
    run.policy.remove(1);
    run.egress[0].resource_spans[0].scope_spans[0].spans[1].parent_span_id = span_id(1, 99);
    let report = merge(run.all(), &MergeOptions::default());
    let (trace1, _) = ids(1, 0);
    let (trace2, _) = ids(2, 0);
    assert_eq!(
        report.unresolved_parents,
        vec![
            (trace1, ids(1, n::FORMAT).1, ids(1, 99).1),
            (trace2, ids(2, n::RECEIVE_POLICY).1, ids(2, n::SEND_EGRESS).1),
        ]
    );
}

#[test]
fn two_different_spans_with_one_id_are_a_conflict_and_the_first_is_kept() {
    let run = fixture::three_process_run();
    let mut altered = run.egress[0].clone();
    altered.resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano += 1;
    let mut inputs = run.all();
    inputs.push(altered);
    let report = merge(inputs, &MergeOptions::default());
    assert_eq!(report.duplicates_dropped, 1, "the unchanged span of the line is a plain repeat");
    assert_eq!(report.conflicting_duplicates, vec![ids(1, n::FORMAT)]);
    let format = report.spans.iter().find(|s| (s.trace_id(), s.span_id()) == ids(1, n::FORMAT)).unwrap();
    assert_eq!(format.span(), &run.egress[0].resource_spans[0].scope_spans[0].spans[1]);
}

#[test]
fn the_same_span_from_another_process_is_a_conflict() {
    let run = fixture::three_process_run();
    let mut moved = run.egress[0].clone();
    moved.resource_spans[0].resource = Some(fixture::resource(1));
    let mut inputs = run.all();
    inputs.push(moved);
    let report = merge(inputs, &MergeOptions::default());
    assert_eq!(report.duplicates_dropped, 0);
    assert_eq!(report.conflicting_duplicates, vec![ids(1, n::RECEIVE_POLICY), ids(1, n::FORMAT)]);
}

#[test]
fn the_result_does_not_depend_on_input_order() {
    let run = fixture::three_process_run();
    let forward = merge(run.all(), &MergeOptions::default());
    let mut reversed = run.all();
    reversed.reverse();
    let backward = merge(reversed, &MergeOptions::default());
    assert_eq!(forward, backward);
    let starts: Vec<u64> = forward.spans.iter().map(|span| span.start_ns()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "sorted by start time");
}

#[test]
fn a_malformed_span_is_left_out_and_named() {
    let run = fixture::three_process_run();
    let mut inputs = run.all();
    inputs[4].resource_spans[0].scope_spans[0].spans[2].span_id = vec![1, 2, 3];
    let report = merge(inputs, &MergeOptions::default());
    assert_eq!(report.malformed_spans.len(), 1);
    assert_eq!(
        report.malformed_spans[0].to_string(),
        "span `policies` at inputs[4].resourceSpans[0].scopeSpans[0].spans[2]: spanId: expected 8 bytes (16 hex digits), not all zero, found 3 bytes"
    );
    assert_eq!(report.spans.len(), fixture::SPANS - 2, "the malformed span and the debug span");
}
