//! Export to the Chrome trace-event format, for Perfetto (ui.perfetto.dev) and chrome://tracing.
//!
//! The layout, following the Trace Event Format document:
//!
//! - one **process row per process** (per distinct resource), named by a `process_name`
//!   metadata event: the process group (else `service.name`) and the OS pid, e.g.
//!   `policy (pid 28411)`; rows are ordered by when each process's first span started
//!   (`process_sort_index`), which is pipeline order;
//! - within a process, **one thread row per event** (per trace): the spans of one event in one
//!   process, named `event 17 · trace 0af76519`. Complete events on one row must nest, so a
//!   span that overlaps a sibling without nesting goes on an extra row of the same event
//!   (`… (2)`); rows of a process are ordered by start. Thread ids are unique in the whole
//!   file, not only within their process: Perfetto names a thread by its tid alone;
//! - every span is a complete event (`"ph":"X"`) with `ts` and `dur` in microseconds,
//!   measured from the earliest span start in the file (kept in `otherData`), so that
//!   nanoseconds survive the float; `args` holds the ids, kind, status and attributes;
//!   `cat` is `node` for node spans, `hop` for hop spans, `span` for the rest;
//! - every paired hop is a **flow** (`"ph":"s"` in the producer span, `"ph":"f"` with
//!   `"bp":"e"` in the consumer span, same `id`, `cat` and `name`), which the viewers draw as
//!   an arrow from the producer span to the consumer span. Both flow events bind to the slice
//!   that encloses their timestamp, so each sits at the middle of its span: at a span's very
//!   start, a viewer that handles the flow event before the slice would bind it to the parent.
//!
//! The output is deterministic: the same spans in any order give the same JSON.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::hops;
use crate::ids::TraceId;
use crate::span::TracedSpan;
use crate::summary::is_node_span;

/// Where one span sits: process row and thread row.
#[derive(Debug, Clone, Copy)]
struct Row {
    pid: u64,
    tid: u64,
}

/// The Chrome trace-event JSON object (`{"traceEvents":[...], ...}`) for `spans`.
pub fn export_chrome(spans: &[TracedSpan]) -> Value {
    let origin_ns = spans.iter().map(TracedSpan::start_ns).min().unwrap_or(0);
    let micros = |ns: u64| ns.saturating_sub(origin_ns) as f64 / 1_000.0;

    let mut trace_seq: HashMap<TraceId, u64> = HashMap::new();
    for span in spans {
        if let Some(seq) = span.seq() {
            trace_seq.entry(span.trace_id()).and_modify(|s| *s = (*s).min(seq)).or_insert(seq);
        }
    }

    let mut processes: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        processes.entry(span.origin().process_key()).or_default().push(i);
    }
    let mut processes: Vec<(u64, String, Vec<usize>)> = processes
        .into_iter()
        .map(|(key, members)| (members.iter().map(|&i| spans[i].start_ns()).min().unwrap_or(0), key, members))
        .collect();
    processes.sort();

    let mut metadata = Vec::new();
    let mut rows: Vec<Option<Row>> = vec![None; spans.len()];
    let mut next_tid = 1;
    for (index, (_, _, members)) in processes.iter().enumerate() {
        let pid = index as u64 + 1;
        let origin = spans[members[0]].origin();
        let group =
            origin.process_group().or_else(|| origin.service_name()).unwrap_or_else(|| format!("process {pid}"));
        let name = match origin.pid() {
            Some(os_pid) => format!("{group} (pid {os_pid})"),
            None => group,
        };
        metadata.push(json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}}));
        metadata
            .push(json!({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": pid}}));

        let mut traces: BTreeMap<TraceId, Vec<usize>> = BTreeMap::new();
        for &i in members {
            traces.entry(spans[i].trace_id()).or_default().push(i);
        }
        let mut traces: Vec<(u64, TraceId, Vec<usize>)> = traces
            .into_iter()
            .map(|(trace, members)| (members.iter().map(|&i| spans[i].start_ns()).min().unwrap_or(0), trace, members))
            .collect();
        traces.sort();

        for (_, trace_id, mut members) in traces {
            members.sort_by_key(|&i| (spans[i].start_ns(), Reverse(spans[i].end_ns()), spans[i].span_id()));
            let lanes = nest_in_lanes(members.iter().map(|&i| (spans[i].start_ns(), spans[i].end_ns())));
            let short = &trace_id.to_string()[..8];
            let label = match trace_seq.get(&trace_id) {
                Some(seq) => format!("event {seq} \u{b7} trace {short}"),
                None => format!("trace {short}"),
            };
            let lane_count = lanes.iter().max().map_or(0, |&lane| lane + 1);
            for lane in 0..lane_count {
                let tid = next_tid + lane as u64;
                let name = if lane == 0 { label.clone() } else { format!("{label} ({})", lane + 1) };
                metadata
                    .push(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}));
                metadata
                    .push(json!({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": tid}}));
            }
            for (&i, &lane) in members.iter().zip(&lanes) {
                rows[i] = Some(Row { pid, tid: next_tid + lane as u64 });
            }
            next_tid += lane_count as u64;
        }
    }

    let mut complete: Vec<(u64, u64, u64, usize)> = Vec::with_capacity(spans.len());
    for (i, row) in rows.iter().enumerate() {
        if let Some(row) = row {
            complete.push((row.pid, row.tid, spans[i].start_ns(), i));
        }
    }
    complete.sort_by_key(|&(pid, tid, start, i)| (pid, tid, start, Reverse(spans[i].end_ns()), spans[i].span_id()));

    let mut events = metadata;
    for &(pid, tid, start, i) in &complete {
        let span = &spans[i];
        let category = if is_node_span(span) {
            "node"
        } else if hops::is_hop_span(span) {
            "hop"
        } else {
            "span"
        };
        events.push(json!({
            "ph": "X",
            "name": span.span().name,
            "cat": category,
            "pid": pid,
            "tid": tid,
            "ts": micros(start),
            "dur": span.duration_ns() as f64 / 1_000.0,
            "args": span_args(span),
        }));
    }

    for (id, hop) in hops::hops(spans).iter().enumerate() {
        let (Some(p), Some(c)) = (hop.producer, hop.consumer) else { continue };
        let (Some(from), Some(to)) = (rows[p], rows[c]) else { continue };
        let name = hop.label();
        let id = id as u64 + 1;
        events.push(json!({
            "ph": "s", "id": id, "cat": "hop", "name": name, "pid": from.pid, "tid": from.tid, "ts": micros(middle(&spans[p])),
        }));
        events.push(json!({
            "ph": "f", "bp": "e", "id": id, "cat": "hop", "name": name, "pid": to.pid, "tid": to.tid,
            "ts": micros(middle(&spans[c])),
        }));
    }

    json!({
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "source": "hopline forensic trace",
            "time_origin_unix_nano": origin_ns.to_string(),
        },
    })
}

/// The middle of a span, in nanoseconds since the epoch.
fn middle(span: &TracedSpan) -> u64 {
    span.start_ns() + span.duration_ns() / 2
}

/// Assigns each interval (sorted by start, longest first) the lowest lane on which it nests
/// inside, or follows, the intervals already there; returns the lanes in input order.
fn nest_in_lanes(intervals: impl Iterator<Item = (u64, u64)>) -> Vec<usize> {
    let mut open: Vec<Vec<u64>> = Vec::new();
    let mut lanes = Vec::new();
    for (start, end) in intervals {
        let end = end.max(start);
        let mut chosen = None;
        for (lane, stack) in open.iter_mut().enumerate() {
            while stack.last().is_some_and(|&open_end| open_end <= start) {
                stack.pop();
            }
            if stack.last().is_none_or(|&open_end| end <= open_end) {
                stack.push(end);
                chosen = Some(lane);
                break;
            }
        }
        let lane = chosen.unwrap_or_else(|| {
            open.push(vec![end]);
            open.len() - 1
        });
        lanes.push(lane);
    }
    lanes
}

fn span_args(span: &TracedSpan) -> Value {
    let mut args = Map::new();
    args.insert("trace_id".into(), span.trace_id().to_string().into());
    args.insert("span_id".into(), span.span_id().to_string().into());
    if let Some(parent) = span.parent_span_id() {
        args.insert("parent_span_id".into(), parent.to_string().into());
    }
    args.insert("kind".into(), span.kind().as_str_name().into());
    if let Some(status) = &span.span().status {
        if status.code != 0 {
            let code = opentelemetry_proto::tonic::trace::v1::status::StatusCode::try_from(status.code)
                .map_or_else(|_| status.code.to_string(), |code| code.as_str_name().to_string());
            args.insert("status".into(), code.into());
        }
        if !status.message.is_empty() {
            args.insert("status_message".into(), status.message.clone().into());
        }
    }
    for kv in &span.span().attributes {
        let value = kv.value.as_ref().and_then(|v| v.value.as_ref()).map_or(Value::Null, crate::attributes::json);
        args.insert(kv.key.clone(), value);
    }
    Value::Object(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_spans_share_a_lane_and_overlapping_ones_do_not() {
        // A parent, its two children in turn, then a span that overlaps the parent's end.
        let lanes = nest_in_lanes([(0, 100), (10, 40), (40, 90), (95, 150), (150, 160)].into_iter());
        assert_eq!(lanes, vec![0, 0, 0, 1, 0]);
    }

    #[test]
    fn a_span_ending_before_it_starts_is_treated_as_instant() {
        assert_eq!(nest_in_lanes([(0, 10), (5, 3)].into_iter()), vec![0, 0]);
    }
}
