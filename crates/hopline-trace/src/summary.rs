//! What a forensic trace says, in a few lines: per node, per hop, errors, slowest events.
//!
//! The figures and how they are defined:
//!
//! - **Node latency** is a node span's duration (end minus start). A node span is a span
//!   carrying `hopline.node` that is not a hop span. Nodes are listed in the order they first
//!   ran (earliest span start), which is pipeline order.
//! - **Hop latency** is the consumer span's end minus the producer span's start: from the
//!   moment the sending group began handing the event over until the receiving group had it
//!   in hand (encoding, the frame's batching, the socket and decoding all included). A hop
//!   span is a PRODUCER or CONSUMER span carrying an integer `hopline.route_hop`; a consumer
//!   pairs with the producer that is its parent in the same trace, else with a producer its
//!   span links name. A producer no consumer pairs with (the event was in flight when a worker
//!   died) and a consumer without its producer (the sender's spans were lost) are counted,
//!   not paired. A pair whose consumer ended before its producer started (clocks of two hosts
//!   out of step) counts 0 and is counted as skewed.
//! - **Percentiles** are nearest-rank: p50 of n sorted values is the value at rank
//!   ⌈n·50/100⌉ (1-based), p99 the one at ⌈n·99/100⌉; max is the largest.
//! - **Errors** are spans whose status code is ERROR, with the event's sequence number (the
//!   span's `hopline.seq`, else its trace's) and the status message.
//! - **Trace duration** is from the root span's start to the latest end of any span of the
//!   trace: the event's life across every process. It is the root span's own duration when
//!   the root encloses its trace; across processes the root (recorded at the source) ends
//!   when its process is done, so both are shown. Traces whose root span is missing are
//!   counted, not ranked.
//! - The **path** of a trace is its node spans in start order, each with its process group.
//!
//! Everything is sorted, so the same spans in any order give the same summary.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::hops::{self, Hop};
use crate::ids::{SpanId, TraceId};
use crate::span::TracedSpan;

/// Count and nearest-rank percentiles of a set of latencies, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyStats {
    /// How many values.
    pub count: usize,
    /// The median (nearest rank).
    pub p50_ns: u64,
    /// The 99th percentile (nearest rank).
    pub p99_ns: u64,
    /// The largest value.
    pub max_ns: u64,
}

impl LatencyStats {
    /// The statistics of `values` (sorted in place); `None` when there are none.
    pub fn of(values: &mut [u64]) -> Option<LatencyStats> {
        values.sort_unstable();
        let n = values.len();
        let rank = |p: usize| values[(p * n).div_ceil(100).max(1) - 1];
        let max_ns = *values.last()?;
        Some(LatencyStats { count: n, p50_ns: rank(50), p99_ns: rank(99), max_ns })
    }
}

/// One node's spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    /// The node (`hopline.node`).
    pub node: String,
    /// The process group its spans ran in.
    pub process_group: Option<String>,
    /// Span durations.
    pub latency: LatencyStats,
    /// How many of its spans have status ERROR.
    pub errors: usize,
}

/// One hop's spans: one route hop from one process group to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopStats {
    /// `hopline.route_hop`: 1 for an event's first hop.
    pub route_hop: u64,
    /// The sending process group.
    pub from: String,
    /// The receiving process group.
    pub to: String,
    /// Hop latencies of the paired spans; `None` when no span paired.
    pub latency: Option<LatencyStats>,
    /// Producer spans no consumer span received.
    pub unpaired_producers: usize,
    /// Consumer spans whose producer span is not in the trace.
    pub unpaired_consumers: usize,
    /// Pairs whose consumer ended before their producer started.
    pub clock_skewed: usize,
}

/// A span with status ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorSpan {
    /// The event's sequence number: the span's `hopline.seq`, else its trace's.
    pub seq: Option<u64>,
    /// The span's node, if it is a node span.
    pub node: Option<String>,
    /// The process group it ran in.
    pub process_group: Option<String>,
    /// The span's name.
    pub name: String,
    /// The status message.
    pub message: String,
    /// The trace.
    pub trace_id: TraceId,
    /// The span.
    pub span_id: SpanId,
}

/// One node on an event's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStep {
    /// The node.
    pub node: String,
    /// The process group it ran in.
    pub process_group: Option<String>,
}

/// One of the slowest traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowTrace {
    /// The trace.
    pub trace_id: TraceId,
    /// The event's sequence number (the root span's `hopline.seq`, else the lowest in the trace).
    pub seq: Option<u64>,
    /// From the root span's start to the latest end in the trace.
    pub duration_ns: u64,
    /// The root span's own duration.
    pub root_duration_ns: u64,
    /// The node spans in start order.
    pub path: Vec<PathStep>,
}

/// The summary of a set of spans; `Display` prints it for a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// How many spans.
    pub spans: usize,
    /// How many traces (events).
    pub traces: usize,
    /// How many processes (distinct resources).
    pub processes: usize,
    /// Per node, in the order nodes first ran.
    pub nodes: Vec<NodeStats>,
    /// Per hop, by route hop, then sending and receiving group.
    pub hops: Vec<HopStats>,
    /// Error spans, by sequence number (those without one last), then trace and span id.
    pub errors: Vec<ErrorSpan>,
    /// The slowest traces, slowest first (ties by trace id).
    pub slowest: Vec<SlowTrace>,
    /// Traces with no root span (its process's spans were lost), not ranked.
    pub traces_without_root: usize,
}

/// The spans of one node, while they are being counted.
struct NodeSpans {
    first_start: u64,
    durations: Vec<u64>,
    errors: usize,
}

/// Whether `span` is a node span: it carries `hopline.node` and is not a hop span.
pub(crate) fn is_node_span(span: &TracedSpan) -> bool {
    span.attribute(crate::attributes::NODE).is_some() && !hops::is_hop_span(span)
}

/// Summarises `spans` (typically [`merge`](crate::merge)'s), ranking the `slowest` slowest traces.
pub fn summary(spans: &[TracedSpan], slowest: usize) -> Summary {
    let mut traces: BTreeMap<TraceId, Vec<&TracedSpan>> = BTreeMap::new();
    for span in spans {
        traces.entry(span.trace_id()).or_default().push(span);
    }
    let processes: BTreeSet<String> = spans.iter().map(|span| span.origin().process_key()).collect();

    let mut trace_seq: HashMap<TraceId, u64> = HashMap::new();
    let mut ranked = Vec::new();
    let mut traces_without_root = 0;
    for (&trace_id, members) in &mut traces {
        members.sort_by_key(|span| (span.start_ns(), span.span_id()));
        let root = members.iter().find(|span| span.parent_span_id().is_none());
        let seq = root.and_then(|root| root.seq()).or_else(|| members.iter().filter_map(|span| span.seq()).min());
        if let Some(seq) = seq {
            trace_seq.insert(trace_id, seq);
        }
        let Some(root) = root else {
            traces_without_root += 1;
            continue;
        };
        let last_end = members.iter().map(|span| span.end_ns()).max().unwrap_or(root.end_ns());
        let path = members
            .iter()
            .filter(|span| is_node_span(span))
            .map(|span| PathStep { node: span.node().unwrap_or_default(), process_group: span.process_group() })
            .collect();
        ranked.push(SlowTrace {
            trace_id,
            seq,
            duration_ns: last_end.saturating_sub(root.start_ns()),
            root_duration_ns: root.duration_ns(),
            path,
        });
    }
    ranked.sort_by(|a, b| b.duration_ns.cmp(&a.duration_ns).then(a.trace_id.cmp(&b.trace_id)));
    ranked.truncate(slowest);

    let mut nodes: BTreeMap<(String, Option<String>), NodeSpans> = BTreeMap::new();
    for span in spans.iter().filter(|span| is_node_span(span)) {
        let key = (span.node().unwrap_or_default(), span.process_group());
        let node = nodes.entry(key).or_insert(NodeSpans { first_start: u64::MAX, durations: Vec::new(), errors: 0 });
        node.first_start = node.first_start.min(span.start_ns());
        node.durations.push(span.duration_ns());
        node.errors += usize::from(span.is_error());
    }
    let mut nodes: Vec<(u64, NodeStats)> = nodes
        .into_iter()
        .filter_map(|((node, process_group), mut spans)| {
            let latency = LatencyStats::of(&mut spans.durations)?;
            Some((spans.first_start, NodeStats { node, process_group, latency, errors: spans.errors }))
        })
        .collect();
    nodes.sort_by(|(a_start, a), (b_start, b)| {
        (a_start, &a.node, &a.process_group).cmp(&(b_start, &b.node, &b.process_group))
    });

    let errors = error_spans(spans, &trace_seq);
    Summary {
        spans: spans.len(),
        traces: traces.len(),
        processes: processes.len(),
        nodes: nodes.into_iter().map(|(_, stats)| stats).collect(),
        hops: hop_stats(spans, &hops::hops(spans)),
        errors,
        slowest: ranked,
        traces_without_root,
    }
}

fn hop_stats(spans: &[TracedSpan], hops: &[Hop]) -> Vec<HopStats> {
    let mut grouped: Vec<(HopStats, Vec<u64>)> = Vec::new();
    for hop in hops {
        let same = |stats: &HopStats| stats.route_hop == hop.route_hop && stats.from == hop.from && stats.to == hop.to;
        if !grouped.last().is_some_and(|(stats, _)| same(stats)) {
            let stats = HopStats {
                route_hop: hop.route_hop,
                from: hop.from.clone(),
                to: hop.to.clone(),
                latency: None,
                unpaired_producers: 0,
                unpaired_consumers: 0,
                clock_skewed: 0,
            };
            grouped.push((stats, Vec::new()));
        }
        let Some((stats, latencies)) = grouped.last_mut() else { continue };
        match hop.latency(spans) {
            Some((latency, skewed)) => {
                latencies.push(latency);
                stats.clock_skewed += usize::from(skewed);
            }
            None if hop.consumer.is_none() => stats.unpaired_producers += 1,
            None => stats.unpaired_consumers += 1,
        }
    }
    grouped
        .into_iter()
        .map(|(mut stats, mut latencies)| {
            stats.latency = LatencyStats::of(&mut latencies);
            stats
        })
        .collect()
}

fn error_spans(spans: &[TracedSpan], trace_seq: &HashMap<TraceId, u64>) -> Vec<ErrorSpan> {
    let mut errors: Vec<ErrorSpan> = spans
        .iter()
        .filter(|span| span.is_error())
        .map(|span| ErrorSpan {
            seq: span.seq().or_else(|| trace_seq.get(&span.trace_id()).copied()),
            node: span.node(),
            process_group: span.process_group(),
            name: span.span().name.clone(),
            message: span.status_message().to_string(),
            trace_id: span.trace_id(),
            span_id: span.span_id(),
        })
        .collect();
    errors.sort_by_key(|e| (e.seq.is_none(), e.seq, e.trace_id, e.span_id));
    errors
}

/// A duration for people: `850 ns`, `12.345 µs`, `1.234 ms`, `2.500 s` (truncated, not rounded).
pub fn format_duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{}.{:03} µs", ns / 1_000, ns % 1_000),
        1_000_000..1_000_000_000 => format!("{}.{:03} ms", ns / 1_000_000, ns % 1_000_000 / 1_000),
        _ => format!("{}.{:03} s", ns / 1_000_000_000, ns % 1_000_000_000 / 1_000_000),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

struct Place<'a>(&'a str, &'a Option<String>);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(group) => write!(f, "{} ({group})", self.0),
            None => f.write_str(self.0),
        }
    }
}

impl fmt::Display for LatencyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p99 {}, max {}",
            format_duration(self.p50_ns),
            format_duration(self.p99_ns),
            format_duration(self.max_ns)
        )
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "forensic trace: {}, {}, {}",
            plural(self.traces, "trace", "traces"),
            plural(self.spans, "span", "spans"),
            plural(self.processes, "process", "processes")
        )?;
        writeln!(f, "nodes (latency: span duration):")?;
        if self.nodes.is_empty() {
            writeln!(f, "  none")?;
        }
        for node in &self.nodes {
            write!(f, "  {}: {}", Place(&node.node, &node.process_group), plural(node.latency.count, "span", "spans"))?;
            if node.errors > 0 {
                write!(f, " ({})", plural(node.errors, "error", "errors"))?;
            }
            writeln!(f, "; {}", node.latency)?;
        }
        writeln!(f, "hops (latency: producer start to consumer end):")?;
        if self.hops.is_empty() {
            writeln!(f, "  none")?;
        }
        for hop in &self.hops {
            write!(f, "  hop {} {} \u{2192} {}: ", hop.route_hop, hop.from, hop.to)?;
            match &hop.latency {
                Some(latency) => write!(f, "{}; {latency}", plural(latency.count, "pair", "pairs"))?,
                None => write!(f, "no pairs")?,
            }
            if hop.unpaired_producers > 0 {
                write!(f, "; {} without consumer", plural(hop.unpaired_producers, "producer", "producers"))?;
            }
            if hop.unpaired_consumers > 0 {
                write!(f, "; {} without producer", plural(hop.unpaired_consumers, "consumer", "consumers"))?;
            }
            if hop.clock_skewed > 0 {
                write!(f, "; {} ended before sent (clock skew)", plural(hop.clock_skewed, "pair", "pairs"))?;
            }
            writeln!(f)?;
        }
        match self.errors.len() {
            0 => writeln!(f, "errors: none")?,
            n => writeln!(f, "errors ({n}):")?,
        }
        for error in &self.errors {
            match error.seq {
                Some(seq) => write!(f, "  event {seq}: ")?,
                None => write!(f, "  event ?: ")?,
            }
            match &error.node {
                Some(node) => write!(f, "node {}", Place(node, &error.process_group))?,
                None => write!(f, "span `{}`", Place(&error.name, &error.process_group))?,
            }
            let message = if error.message.is_empty() { "(no message)" } else { &error.message };
            writeln!(f, ": {message} [trace {} span {}]", error.trace_id, error.span_id)?;
        }
        writeln!(f, "slowest traces (root span start to last span end):")?;
        if self.slowest.is_empty() {
            writeln!(f, "  none")?;
        }
        for (rank, trace) in self.slowest.iter().enumerate() {
            write!(f, "  {}. trace {}", rank + 1, trace.trace_id)?;
            if let Some(seq) = trace.seq {
                write!(f, " (event {seq})")?;
            }
            write!(
                f,
                ": {} (root span {})",
                format_duration(trace.duration_ns),
                format_duration(trace.root_duration_ns)
            )?;
            let path: Vec<String> = trace.path.iter().map(|s| Place(&s.node, &s.process_group).to_string()).collect();
            if !path.is_empty() {
                write!(f, ": {}", path.join(" \u{2192} "))?;
            }
            writeln!(f)?;
        }
        if self.traces_without_root > 0 {
            writeln!(f, "  ({} without a root span, not ranked)", plural(self.traces_without_root, "trace", "traces"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut values: Vec<u64> = (1..=100).rev().collect();
        let stats = LatencyStats::of(&mut values).unwrap();
        assert_eq!(stats, LatencyStats { count: 100, p50_ns: 50, p99_ns: 99, max_ns: 100 });
        let stats = LatencyStats::of(&mut [30, 10, 20]).unwrap();
        assert_eq!(stats, LatencyStats { count: 3, p50_ns: 20, p99_ns: 30, max_ns: 30 });
        assert_eq!(LatencyStats::of(&mut [7]).unwrap(), LatencyStats { count: 1, p50_ns: 7, p99_ns: 7, max_ns: 7 });
        assert_eq!(LatencyStats::of(&mut []), None);
    }

    #[test]
    fn durations_print_in_the_largest_unit_below_them() {
        assert_eq!(format_duration(999), "999 ns");
        assert_eq!(format_duration(12_345), "12.345 µs");
        assert_eq!(format_duration(1_234_567), "1.234 ms");
        assert_eq!(format_duration(2_500_000_000), "2.500 s");
    }
}
