//! One span with the resource and scope it came from.
//!
//! OTLP nests spans under their scope under their resource; a merged trace needs them flat,
//! each still knowing which process wrote it. A [`TracedSpan`] is that: the OTLP `Span`
//! untouched, a shared [`Origin`] (resource and scope), and the ids checked once, so that
//! merging, summarising and exporting never meet an id of the wrong length.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};

use crate::attributes;
use crate::ids::{SpanId, TraceId};

/// Where a span was recorded: the process (resource) and the instrumentation scope.
///
/// Spans of one process share one `Origin` through an `Arc`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Origin {
    /// The process: `service.name`, `service.instance.id`, `process.pid`, `hopline.process_group`.
    pub resource: Resource,
    /// The schema URL of the resource (`ResourceSpans.schemaUrl`).
    pub resource_schema_url: String,
    /// The instrumentation scope that recorded the span.
    pub scope: InstrumentationScope,
    /// The schema URL of the scope (`ScopeSpans.schemaUrl`).
    pub scope_schema_url: String,
}

impl Origin {
    /// The resource's `hopline.process_group`, if it has one.
    pub fn process_group(&self) -> Option<String> {
        attributes::find(&self.resource.attributes, attributes::PROCESS_GROUP).map(attributes::text)
    }

    /// The resource's `service.name`, if it has one.
    pub fn service_name(&self) -> Option<String> {
        attributes::find(&self.resource.attributes, attributes::SERVICE_NAME).map(attributes::text)
    }

    /// The resource's `process.pid`, if it has one and it is an integer.
    pub fn pid(&self) -> Option<u64> {
        attributes::find(&self.resource.attributes, attributes::PROCESS_PID).and_then(attributes::as_u64)
    }

    /// A text that is equal for two origins exactly when their resources have the same
    /// attributes (in any order): one per process.
    pub(crate) fn process_key(&self) -> String {
        let mut pairs: Vec<String> = self
            .resource
            .attributes
            .iter()
            .map(|kv| {
                let value = kv.value.as_ref().and_then(|v| v.value.as_ref()).map(attributes::json).unwrap_or_default();
                format!("{}={value}", kv.key)
            })
            .collect();
        pairs.sort();
        pairs.join("\u{1f}")
    }
}

/// A span whose ids are not valid OTLP ids, with where it sits in its `TracesData`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("span `{name}`{}: {field}: expected {expected}, found {found}", at(.location))]
pub struct MalformedSpan {
    /// The span's place, e.g. `resourceSpans[0].scopeSpans[1].spans[3]`; empty when unknown.
    pub location: String,
    /// The span's name.
    pub name: String,
    /// The OTLP/JSON field that is wrong: `traceId`, `spanId` or `parentSpanId`.
    pub field: &'static str,
    /// What the field must hold.
    pub expected: &'static str,
    /// What it held.
    pub found: String,
}

/// One span, its origin, and its checked ids.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedSpan {
    origin: Arc<Origin>,
    span: Span,
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
}

const TRACE_ID_EXPECTED: &str = "16 bytes (32 hex digits), not all zero";
const SPAN_ID_EXPECTED: &str = "8 bytes (16 hex digits), not all zero";
const PARENT_ID_EXPECTED: &str = "nothing (a root span) or 8 bytes (16 hex digits), not all zero";

fn at(location: &str) -> String {
    if location.is_empty() { String::new() } else { format!(" at {location}") }
}

fn describe(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "nothing".to_string()
    } else if bytes.iter().all(|&b| b == 0) {
        format!("{} zero bytes", bytes.len())
    } else {
        format!("{} bytes", bytes.len())
    }
}

type Ids = (TraceId, SpanId, Option<SpanId>);

/// The span's ids, or the field that is wrong: its name, what it must hold, what it holds.
fn check_ids(span: &Span) -> Result<Ids, (&'static str, &'static str, &[u8])> {
    let trace_id = TraceId::from_bytes(&span.trace_id).ok_or(("traceId", TRACE_ID_EXPECTED, &span.trace_id[..]))?;
    let span_id = SpanId::from_bytes(&span.span_id).ok_or(("spanId", SPAN_ID_EXPECTED, &span.span_id[..]))?;
    let parent_span_id = match &span.parent_span_id[..] {
        [] => None,
        bytes => Some(SpanId::from_bytes(bytes).ok_or(("parentSpanId", PARENT_ID_EXPECTED, bytes))?),
    };
    Ok((trace_id, span_id, parent_span_id))
}

fn malformed(
    span: &Span,
    location: String,
    (field, expected, bytes): (&'static str, &'static str, &[u8]),
) -> MalformedSpan {
    MalformedSpan { location, name: span.name.clone(), field, expected, found: describe(bytes) }
}

impl TracedSpan {
    /// Checks `span`'s ids and attaches it to `origin`.
    pub fn new(origin: Arc<Origin>, span: Span) -> Result<Self, MalformedSpan> {
        TracedSpan::located(origin, span, String::new)
    }

    /// As [`TracedSpan::new`]; `location` names the span in the error.
    fn located(origin: Arc<Origin>, span: Span, location: impl FnOnce() -> String) -> Result<Self, MalformedSpan> {
        match check_ids(&span) {
            Ok((trace_id, span_id, parent_span_id)) => {
                Ok(TracedSpan { origin, span, trace_id, span_id, parent_span_id })
            }
            Err(wrong) => Err(malformed(&span, location(), wrong)),
        }
    }

    /// The process and scope that recorded the span.
    pub fn origin(&self) -> &Arc<Origin> {
        &self.origin
    }

    /// The OTLP span itself.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The trace the span belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span's own id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The parent's id; `None` for a root span.
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }

    /// The span's own attribute `key` (not the resource's), if present and not empty.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        attributes::find(&self.span.attributes, key)
    }

    /// The span's attribute `key` as text (see [`attributes`](crate::attributes) for how values read).
    pub fn attribute_text(&self, key: &str) -> Option<String> {
        self.attribute(key).map(attributes::text)
    }

    /// The node the span covers (`hopline.node`).
    pub fn node(&self) -> Option<String> {
        self.attribute_text(attributes::NODE)
    }

    /// The process group the span ran in: its own `hopline.process_group`, else its resource's.
    pub fn process_group(&self) -> Option<String> {
        self.attribute_text(attributes::PROCESS_GROUP).or_else(|| self.origin.process_group())
    }

    /// The event's sequence number (`hopline.seq`), if the span carries one.
    pub fn seq(&self) -> Option<u64> {
        self.attribute(attributes::SEQ).and_then(attributes::as_u64)
    }

    /// Whether the span is a debug span (`hopline.level` = `"debug"`, in any case).
    pub fn is_debug(&self) -> bool {
        matches!(self.attribute(attributes::LEVEL), Some(Value::StringValue(level)) if level.eq_ignore_ascii_case(attributes::LEVEL_DEBUG))
    }

    /// The span kind; values outside the enum read as `Unspecified`.
    pub fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }

    /// Whether the span's status code is ERROR.
    pub fn is_error(&self) -> bool {
        self.span.status.as_ref().is_some_and(|s| s.code == StatusCode::Error as i32)
    }

    /// The status message (empty when there is none).
    pub fn status_message(&self) -> &str {
        self.span.status.as_ref().map_or("", |s| s.message.as_str())
    }

    /// Start time, nanoseconds since the Unix epoch.
    pub fn start_ns(&self) -> u64 {
        self.span.start_time_unix_nano
    }

    /// End time, nanoseconds since the Unix epoch.
    pub fn end_ns(&self) -> u64 {
        self.span.end_time_unix_nano
    }

    /// End minus start in nanoseconds; 0 when the end is before the start.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns().saturating_sub(self.start_ns())
    }

    /// Gives the OTLP span back.
    pub fn into_span(self) -> Span {
        self.span
    }
}

/// Calls `each` with every span of `data` (ids checked), its `Origin` shared by the spans of
/// one `ScopeSpans` (through `intern`, which may hand back an equal origin met before).
pub(crate) fn for_each_span(
    data: TracesData,
    prefix: &str,
    mut intern: impl FnMut(Origin) -> Arc<Origin>,
    mut each: impl FnMut(Result<TracedSpan, MalformedSpan>),
) {
    for (r, resource_spans) in data.resource_spans.into_iter().enumerate() {
        let ResourceSpans { resource, scope_spans, schema_url: resource_schema_url } = resource_spans;
        let resource = resource.unwrap_or_default();
        for (s, scope_spans) in scope_spans.into_iter().enumerate() {
            let ScopeSpans { scope, spans, schema_url: scope_schema_url } = scope_spans;
            let origin = intern(Origin {
                resource: resource.clone(),
                resource_schema_url: resource_schema_url.clone(),
                scope: scope.unwrap_or_default(),
                scope_schema_url,
            });
            for (i, span) in spans.into_iter().enumerate() {
                let location = || format!("{prefix}resourceSpans[{r}].scopeSpans[{s}].spans[{i}]");
                each(TracedSpan::located(Arc::clone(&origin), span, location));
            }
        }
    }
}

/// The spans of `data`, flat, in file order, ids checked.
///
/// Spans of one `ScopeSpans` share one [`Origin`]. The first span with a malformed id is an error.
pub fn flatten(data: TracesData) -> Result<Vec<TracedSpan>, MalformedSpan> {
    let mut spans = Vec::new();
    let mut first_error = None;
    for_each_span(data, "", Arc::new, |span| match span {
        Ok(span) => spans.push(span),
        Err(e) => {
            first_error.get_or_insert(e);
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(spans),
    }
}

/// Checks every span id of `data` without taking it apart.
pub fn check(data: &TracesData) -> Result<(), MalformedSpan> {
    for (r, resource_spans) in data.resource_spans.iter().enumerate() {
        for (s, scope_spans) in resource_spans.scope_spans.iter().enumerate() {
            for (i, span) in scope_spans.spans.iter().enumerate() {
                if let Err(wrong) = check_ids(span) {
                    return Err(malformed(span, format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"), wrong));
                }
            }
        }
    }
    Ok(())
}

/// OTLP `TracesData` lines for `spans`: spans of one origin together, in the order given,
/// at most `max_spans_per_line` spans a line (at least one).
///
/// Origins are told apart by value, so spans read from different lines of one process end up
/// on the same lines again.
pub fn to_traces_data(spans: &[TracedSpan], max_spans_per_line: usize) -> Vec<TracesData> {
    let max = max_spans_per_line.max(1);
    let mut groups: Vec<(&Arc<Origin>, Vec<Span>)> = Vec::new();
    for span in spans {
        let found = groups.iter().position(|(o, _)| Arc::ptr_eq(o, &span.origin) || ***o == *span.origin);
        let index = found.unwrap_or_else(|| {
            groups.push((&span.origin, Vec::new()));
            groups.len() - 1
        });
        groups[index].1.push(span.span.clone());
    }
    let mut lines = Vec::new();
    for (origin, spans) in groups {
        for chunk in spans.chunks(max) {
            lines.push(TracesData {
                resource_spans: vec![ResourceSpans {
                    resource: Some(origin.resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(origin.scope.clone()),
                        spans: chunk.to_vec(),
                        schema_url: origin.scope_schema_url.clone(),
                    }],
                    schema_url: origin.resource_schema_url.clone(),
                }],
            });
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace_id: Vec<u8>, span_id: Vec<u8>, parent_span_id: Vec<u8>) -> Span {
        Span { trace_id, span_id, parent_span_id, name: "parse".into(), ..Default::default() }
    }

    #[test]
    fn a_span_with_good_ids_keeps_them_checked() {
        let traced = TracedSpan::new(Arc::default(), span(vec![1; 16], vec![2; 8], vec![3; 8])).unwrap();
        assert_eq!(traced.trace_id(), TraceId([1; 16]));
        assert_eq!(traced.span_id(), SpanId([2; 8]));
        assert_eq!(traced.parent_span_id(), Some(SpanId([3; 8])));
        let root = TracedSpan::new(Arc::default(), span(vec![1; 16], vec![2; 8], vec![])).unwrap();
        assert_eq!(root.parent_span_id(), None);
    }

    #[test]
    fn a_bad_id_names_the_span_the_field_and_what_it_held() {
        let error = TracedSpan::new(Arc::default(), span(vec![1; 16], vec![2; 8], vec![0; 8])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "span `parse`: parentSpanId: expected nothing (a root span) or 8 bytes (16 hex digits), not all zero, \
             found 8 zero bytes"
        );
        let error = TracedSpan::new(Arc::default(), span(vec![], vec![2; 8], vec![])).unwrap_err();
        assert_eq!(error.field, "traceId");
        assert_eq!(error.found, "nothing");
    }

    #[test]
    fn origins_of_one_process_have_one_key_whatever_the_attribute_order() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
        let kv = |key: &str, value: &str| KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }),
            ..Default::default()
        };
        let mut a = Origin::default();
        a.resource.attributes = vec![kv("service.name", "hopline"), kv("hopline.process_group", "policy")];
        let mut b = a.clone();
        b.resource.attributes.reverse();
        b.scope.name = "another scope".into();
        assert_eq!(a.process_key(), b.process_key());
        b.resource.attributes[0] = kv("hopline.process_group", "egress");
        assert_ne!(a.process_key(), b.process_key());
    }
}
