//! Merging the spans of every process of a run into one set.
//!
//! Each worker writes (or sends) its own spans, possibly more than once: a worker that
//! flushed twice repeats spans, and a worker that died leaves children whose parents never
//! arrived. [`merge`] makes one set of them and says what it found:
//!
//! - spans are keyed by (trace id, span id); a repeat identical to the first (same span,
//!   same resource and scope) is dropped and counted; a repeat that differs keeps the first
//!   one read and is listed as a conflict, since two different spans cannot share an id;
//! - every span keeps its own resource and scope (spans of different processes keep
//!   `service.name`, `service.instance.id`, `process.pid`, `hopline.process_group`); equal
//!   origins are shared, so spans of one process read from many lines write back together;
//! - a parent id that names no span of the same trace in the merged input is listed;
//! - debug spans (`hopline.level` = `"debug"`) are left out unless the level is debug. A
//!   span whose parent was left out this way keeps its parent id, and that parent does not
//!   count as unresolved (it was there);
//! - the result is sorted by start time, then trace id, then span id, whatever the input
//!   order, and so are the lists in the report.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::TracesData;

use crate::ids::{SpanId, TraceId};
use crate::span::{self, MalformedSpan, Origin, TracedSpan};

/// Which spans a merge keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanLevel {
    /// Leave out debug spans.
    #[default]
    Info,
    /// Keep every span.
    Debug,
}

/// How to merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeOptions {
    /// Debug spans are kept only at [`SpanLevel::Debug`].
    pub level: SpanLevel,
}

/// The merged spans and what the merge found on the way.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MergeReport {
    /// The merged spans, sorted by start time, trace id, span id.
    pub spans: Vec<TracedSpan>,
    /// Spans dropped as identical repeats of a span already read.
    pub duplicates_dropped: usize,
    /// (trace id, span id) of spans read more than once with different contents; the first
    /// one read is kept. Sorted.
    pub conflicting_duplicates: Vec<(TraceId, SpanId)>,
    /// Debug spans left out by the level.
    pub debug_spans_dropped: usize,
    /// Spans left out because an id was malformed, with where they were (`inputs[i].…`).
    pub malformed_spans: Vec<MalformedSpan>,
    /// (trace id, span id, parent span id) of kept spans whose parent is not in the merged
    /// input. Sorted.
    pub unresolved_parents: Vec<(TraceId, SpanId, SpanId)>,
}

/// Merges the spans of `inputs` (each a `TracesData` line, from any process, in any order).
pub fn merge<I: IntoIterator<Item = TracesData>>(inputs: I, options: &MergeOptions) -> MergeReport {
    let mut report = MergeReport::default();
    let mut origins: Vec<Arc<Origin>> = Vec::new();
    let mut spans: Vec<TracedSpan> = Vec::new();
    let mut by_id: HashMap<(TraceId, SpanId), usize> = HashMap::new();

    for (index, data) in inputs.into_iter().enumerate() {
        let intern = |origin: Origin| match origins.iter().find(|known| ***known == origin) {
            Some(known) => Arc::clone(known),
            None => {
                let origin = Arc::new(origin);
                origins.push(Arc::clone(&origin));
                origin
            }
        };
        span::for_each_span(data, &format!("inputs[{index}]."), intern, |span| match span {
            Err(malformed) => report.malformed_spans.push(malformed),
            Ok(span) => match by_id.entry((span.trace_id(), span.span_id())) {
                Entry::Vacant(vacant) => {
                    vacant.insert(spans.len());
                    spans.push(span);
                }
                Entry::Occupied(first) => {
                    let first = &spans[*first.get()];
                    if Arc::ptr_eq(first.origin(), span.origin()) && first.span() == span.span() {
                        report.duplicates_dropped += 1;
                    } else {
                        report.conflicting_duplicates.push((span.trace_id(), span.span_id()));
                    }
                }
            },
        });
    }

    let keep_debug = options.level == SpanLevel::Debug;
    for span in spans.iter().filter(|span| keep_debug || !span.is_debug()) {
        if let Some(parent) = span.parent_span_id() {
            if !by_id.contains_key(&(span.trace_id(), parent)) {
                report.unresolved_parents.push((span.trace_id(), span.span_id(), parent));
            }
        }
    }
    if !keep_debug {
        let before = spans.len();
        spans.retain(|span| !span.is_debug());
        report.debug_spans_dropped = before - spans.len();
    }
    spans.sort_by_key(|span| (span.start_ns(), span.trace_id(), span.span_id()));
    report.spans = spans;
    report.conflicting_duplicates.sort();
    report.conflicting_duplicates.dedup();
    report.unresolved_parents.sort();
    report
}
