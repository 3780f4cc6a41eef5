//! The Chrome trace-event export has the structure Perfetto and chrome://tracing expect.

use std::collections::{BTreeMap, BTreeSet};

use hopline_trace::{MergeOptions, SpanLevel, export_chrome, merge};
use serde_json::Value;

use crate::fixture;

fn exported() -> Value {
    let merged = merge(fixture::three_process_run().all(), &MergeOptions { level: SpanLevel::Debug });
    export_chrome(&merged.spans)
}

fn events(json: &Value) -> &Vec<Value> {
    json["traceEvents"].as_array().expect("traceEvents is an array")
}

fn of_phase<'a>(json: &'a Value, phase: &str) -> Vec<&'a Value> {
    events(json).iter().filter(|e| e["ph"] == phase).collect()
}

#[test]
fn every_span_is_a_complete_event_with_pid_tid_ts_and_dur() {
    let json = exported();
    let complete = of_phase(&json, "X");
    assert_eq!(complete.len(), fixture::SPANS);
    for event in &complete {
        assert!(event["pid"].is_u64() && event["tid"].is_u64(), "{event}");
        assert!(event["ts"].as_f64().is_some_and(|ts| ts >= 0.0), "{event}");
        assert!(event["dur"].as_f64().is_some_and(|dur| dur >= 0.0), "{event}");
        assert!(event["name"].is_string() && event["cat"].is_string(), "{event}");
        assert!(event["args"]["trace_id"].is_string() && event["args"]["span_id"].is_string(), "{event}");
    }
    let parse = complete.iter().find(|e| e["name"] == "parse" && e["args"]["hopline.seq"] == 2).unwrap();
    // Event 2 starts 1 ms after the first span; parse runs from 5 µs to 25 µs.
    assert_eq!(parse["ts"], 1005.0);
    assert_eq!(parse["dur"], 20.0);
    assert_eq!(parse["cat"], "node");
    assert_eq!(parse["args"]["hopline.node"], "parse");
    let failed = complete.iter().find(|e| e["name"] == "policies" && e["args"]["hopline.seq"] == 3).unwrap();
    assert_eq!(failed["args"]["status"], "STATUS_CODE_ERROR");
    assert_eq!(failed["args"]["status_message"], fixture::FAILURE);
    assert_eq!(json["otherData"]["time_origin_unix_nano"], fixture::T0.to_string());
}

#[test]
fn each_process_is_one_named_row() {
    let json = exported();
    let names: BTreeMap<u64, &str> = of_phase(&json, "M")
        .into_iter()
        .filter(|e| e["name"] == "process_name")
        .map(|e| (e["pid"].as_u64().unwrap(), e["args"]["name"].as_str().unwrap()))
        .collect();
    let process_name_events = of_phase(&json, "M").iter().filter(|e| e["name"] == "process_name").count();
    assert_eq!(process_name_events, 3, "one process_name per process");
    assert_eq!(
        names,
        BTreeMap::from([(1, "ingest (pid 28410)"), (2, "policy (pid 28411)"), (3, "egress (pid 28412)")])
    );
    let pids: BTreeSet<u64> = of_phase(&json, "X").iter().map(|e| e["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids, BTreeSet::from([1, 2, 3]));
    for event in of_phase(&json, "X") {
        let pid = event["pid"].as_u64().unwrap();
        let name = event["name"].as_str().unwrap();
        let expected = match name {
            "source" | "parse" | "time_keys" | "idempotency" | "send policy" => 1,
            "receive ingest" | "features" | "policies" | "send egress" | "lookup customer window" => 2,
            _ => 3,
        };
        assert_eq!(pid, expected, "{name}");
    }
}

#[test]
fn every_thread_row_is_named_and_its_spans_nest() {
    let json = exported();
    let named: BTreeSet<(u64, u64)> = of_phase(&json, "M")
        .into_iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
        .collect();
    let mut rows: BTreeMap<(u64, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for event in of_phase(&json, "X") {
        let row = (event["pid"].as_u64().unwrap(), event["tid"].as_u64().unwrap());
        let ts = event["ts"].as_f64().unwrap();
        rows.entry(row).or_default().push((ts, ts + event["dur"].as_f64().unwrap()));
    }
    assert_eq!(named, rows.keys().copied().collect(), "every row used is named, every named row used");
    let tids: BTreeSet<u64> = named.iter().map(|&(_, tid)| tid).collect();
    assert_eq!(tids.len(), named.len(), "a tid names one thread in the whole file");
    // One row per event in each process it reached: 3 + 3 + 2.
    assert_eq!(rows.len(), 8);
    for (row, mut spans) in rows {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for (start, end) in spans {
            while open.last().is_some_and(|&e| e <= start) {
                open.pop();
            }
            assert!(open.last().is_none_or(|&e| end <= e), "row {row:?}: span {start}..{end} overlaps without nesting");
            open.push(end);
        }
    }
    let thread_names: Vec<&str> = of_phase(&json, "M")
        .into_iter()
        .filter(|e| e["name"] == "thread_name" && e["pid"] == 2)
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(thread_names, vec!["event 1 · trace 0af76519", "event 2 · trace 0af76519", "event 3 · trace 0af76519"]);
}

#[test]
fn each_hop_is_a_flow_from_its_producer_span_to_its_consumer_span() {
    let json = exported();
    let complete = of_phase(&json, "X");
    let starts = of_phase(&json, "s");
    let finishes = of_phase(&json, "f");
    assert_eq!(starts.len(), 5, "three first hops and two second hops");
    assert_eq!(finishes.len(), 5);
    let enclosing = |flow: &Value, kind: &str| -> Value {
        let ts = flow["ts"].as_f64().unwrap();
        complete
            .iter()
            .filter(|e| e["pid"] == flow["pid"] && e["tid"] == flow["tid"] && e["args"]["kind"] == kind)
            .find(|e| {
                // Strictly inside, so no viewer can bind the flow to the parent instead.
                let start = e["ts"].as_f64().unwrap();
                start < ts && ts < start + e["dur"].as_f64().unwrap()
            })
            .map(|e| (*e).clone())
            .unwrap_or_else(|| panic!("no {kind} span encloses {flow}"))
    };
    let mut ids = BTreeSet::new();
    for start in &starts {
        let id = start["id"].as_u64().unwrap();
        assert!(ids.insert(id), "flow ids are unique");
        let matching: Vec<_> = finishes.iter().filter(|f| f["id"] == start["id"]).collect();
        assert_eq!(matching.len(), 1, "one finish for flow {id}");
        let finish = matching[0];
        assert_eq!(finish["bp"], "e");
        assert_eq!((&finish["cat"], &finish["name"]), (&start["cat"], &start["name"]));
        let producer = enclosing(start, "SPAN_KIND_PRODUCER");
        let consumer = enclosing(finish, "SPAN_KIND_CONSUMER");
        assert_eq!(producer["args"]["trace_id"], consumer["args"]["trace_id"]);
        assert_eq!(consumer["args"]["parent_span_id"], producer["args"]["span_id"]);
        assert_ne!(producer["pid"], consumer["pid"], "a hop crosses processes");
    }
    let names: BTreeSet<&str> = starts.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["hop 1 ingest → policy", "hop 2 policy → egress"]));
}

#[test]
fn the_export_does_not_depend_on_input_order() {
    let merged = merge(fixture::three_process_run().all(), &MergeOptions { level: SpanLevel::Debug });
    let mut reversed = merged.spans.clone();
    reversed.reverse();
    assert_eq!(export_chrome(&merged.spans), export_chrome(&reversed));
}

#[test]
fn no_spans_export_an_empty_trace() {
    let json = export_chrome(&[]);
    assert_eq!(events(&json).len(), 0);
}
