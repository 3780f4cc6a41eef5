//! Spans flattened out of export requests, for assertions that read like the trace.
//!
//! An OTLP request nests spans under scopes under resources, with ids as bytes and attribute
//! values as a tagged union. Tests want "the span named `hop` of service `policy` has parent
//! X and attribute `hop.group` = `policy`", so each [`ReceivedSpan`] carries its resource and
//! scope, ids as lower-case hex, and attributes rendered as strings.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::decode::hex;
use crate::{Attributes, ExportTraceServiceRequest, Request, SpanKind, StatusCode};

/// One span as received, with the resource and scope it was sent under.
///
/// Ids are lower-case hex, as OTLP/JSON writes them; attribute values are rendered as strings:
/// strings as they are, booleans and integers as Rust prints them (`true`, `-3`), doubles as
/// Rust prints them (`1.5`, `2`), bytes as hex, and arrays and key-value lists as compact JSON
/// of their elements (`["a",1]`, `{"k":true}`). A key that appears twice keeps its last value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The resource's attributes (`service.name`, `process.pid`, ...).
    pub resource: Attributes,
    /// The instrumentation scope's name.
    pub scope_name: String,
    /// The instrumentation scope's version.
    pub scope_version: String,
    /// The trace id: 32 hex digits.
    pub trace_id: String,
    /// The span id: 16 hex digits.
    pub span_id: String,
    /// The parent span id: 16 hex digits, or empty for a root span.
    pub parent_span_id: String,
    /// The span's `flags`: W3C trace flags in bits 0-7, and in bits 8 and 9 whether the
    /// parent's remoteness is known and whether it is remote.
    pub flags: u32,
    /// The span's name.
    pub name: String,
    /// The span's kind (`Unspecified` for a value outside the enum).
    pub kind: SpanKind,
    /// The span's attributes.
    pub attributes: Attributes,
    /// The span's events, in order.
    pub events: Vec<ReceivedEvent>,
    /// The span's links, in order.
    pub links: Vec<ReceivedLink>,
    /// The status code (`Unset` for a value outside the enum or a missing status).
    pub status_code: StatusCode,
    /// The status message.
    pub status_message: String,
    /// Start time, nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End time, nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
}

impl ReceivedSpan {
    /// The resource's `service.name`.
    pub fn service_name(&self) -> Option<&str> {
        self.resource.get("service.name").map(String::as_str)
    }

    /// The rendered value of the span attribute `key`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Whether the span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }

    /// Whether the parent lives in another process (it came in through propagation), when the
    /// sender said so (bit 8 of `flags`); `None` when it did not.
    pub fn parent_is_remote(&self) -> Option<bool> {
        (self.flags & 0x100 != 0).then_some(self.flags & 0x200 != 0)
    }
}

/// A span event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedEvent {
    /// The event's name.
    pub name: String,
    /// When it happened, nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// Its attributes, rendered as for spans.
    pub attributes: Attributes,
}

/// A span link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedLink {
    /// The linked span's trace id, in hex.
    pub trace_id: String,
    /// The linked span's id, in hex.
    pub span_id: String,
    /// The link's attributes, rendered as for spans.
    pub attributes: Attributes,
}

/// The number of spans in one export request.
pub(crate) fn count(request: &ExportTraceServiceRequest) -> usize {
    request.resource_spans.iter().flat_map(|resource| &resource.scope_spans).map(|scope| scope.spans.len()).sum()
}

/// The spans of the accepted requests, in arrival order.
pub(crate) fn flatten(requests: &[Request]) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for traces in requests.iter().filter(|request| request.accepted()).filter_map(|request| request.traces.as_ref()) {
        for resource_spans in &traces.resource_spans {
            let resource = resource_spans.resource.as_ref().map(|resource| render_all(&resource.attributes));
            for scope_spans in &resource_spans.scope_spans {
                let (scope_name, scope_version) = scope_spans
                    .scope
                    .as_ref()
                    .map(|scope| (scope.name.clone(), scope.version.clone()))
                    .unwrap_or_default();
                for span in &scope_spans.spans {
                    spans.push(received(span, resource.clone().unwrap_or_default(), &scope_name, &scope_version));
                }
            }
        }
    }
    spans
}

fn received(span: &Span, resource: Attributes, scope_name: &str, scope_version: &str) -> ReceivedSpan {
    let status = span.status.clone().unwrap_or_default();
    ReceivedSpan {
        resource,
        scope_name: scope_name.to_owned(),
        scope_version: scope_version.to_owned(),
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: hex(&span.parent_span_id),
        flags: span.flags,
        name: span.name.clone(),
        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
        attributes: render_all(&span.attributes),
        events: span
            .events
            .iter()
            .map(|event| ReceivedEvent {
                name: event.name.clone(),
                time_unix_nano: event.time_unix_nano,
                attributes: render_all(&event.attributes),
            })
            .collect(),
        links: span
            .links
            .iter()
            .map(|link| ReceivedLink {
                trace_id: hex(&link.trace_id),
                span_id: hex(&link.span_id),
                attributes: render_all(&link.attributes),
            })
            .collect(),
        status_code: StatusCode::try_from(status.code).unwrap_or(StatusCode::Unset),
        status_message: status.message,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
    }
}

fn render_all(attributes: &[KeyValue]) -> Attributes {
    attributes.iter().map(|kv| (kv.key.clone(), render(kv.value.as_ref()))).collect::<BTreeMap<_, _>>()
}

/// One attribute value as a string (see [`ReceivedSpan`] for the rules).
fn render(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(Value::StringValue(string)) => string.clone(),
        Some(Value::BoolValue(boolean)) => boolean.to_string(),
        Some(Value::IntValue(int)) => int.to_string(),
        Some(Value::DoubleValue(double)) => double.to_string(),
        Some(Value::BytesValue(bytes)) => hex(bytes),
        Some(composite @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => to_json(Some(composite)).to_string(),
        // A profiling-only string-table index, which trace receivers treat as absent.
        Some(Value::StringValueStrindex(_)) | None => String::new(),
    }
}

/// An attribute value as JSON, for the elements of arrays and key-value lists.
fn to_json(value: Option<&Value>) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Some(Value::StringValue(string)) => Json::String(string.clone()),
        Some(Value::BoolValue(boolean)) => Json::Bool(*boolean),
        Some(Value::IntValue(int)) => Json::from(*int),
        Some(Value::DoubleValue(double)) => {
            serde_json::Number::from_f64(*double).map_or_else(|| Json::String(double.to_string()), Json::Number)
        }
        Some(Value::BytesValue(bytes)) => Json::String(hex(bytes)),
        Some(Value::ArrayValue(array)) => {
            array.values.iter().map(|element| to_json(element.value.as_ref())).collect::<Vec<_>>().into()
        }
        Some(Value::KvlistValue(list)) => Json::Object(
            list.values
                .iter()
                .map(|kv| (kv.key.clone(), to_json(kv.value.as_ref().and_then(|value| value.value.as_ref()))))
                .collect(),
        ),
        Some(Value::StringValueStrindex(_)) | None => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn any(value: Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn scalar_attributes_render_as_rust_prints_them() {
        assert_eq!(render(Some(&any(Value::StringValue("x y".to_owned())))), "x y");
        assert_eq!(render(Some(&any(Value::BoolValue(true)))), "true");
        assert_eq!(render(Some(&any(Value::IntValue(-3)))), "-3");
        assert_eq!(render(Some(&any(Value::DoubleValue(1.5)))), "1.5");
        assert_eq!(render(Some(&any(Value::DoubleValue(2.0)))), "2");
        assert_eq!(render(Some(&any(Value::BytesValue(vec![0xab, 0x01])))), "ab01");
        assert_eq!(render(None), "");
        assert_eq!(render(Some(&AnyValue { value: None })), "");
    }

    #[test]
    fn composite_attributes_render_as_compact_json() {
        let array = Value::ArrayValue(ArrayValue {
            values: vec![any(Value::StringValue("a".to_owned())), any(Value::IntValue(1)), AnyValue { value: None }],
        });
        assert_eq!(render(Some(&any(array))), r#"["a",1,null]"#);
        let list = Value::KvlistValue(KeyValueList {
            values: vec![KeyValue { key: "k".to_owned(), value: Some(any(Value::BoolValue(true))), key_strindex: 0 }],
        });
        assert_eq!(render(Some(&any(list))), r#"{"k":true}"#);
    }

    #[test]
    fn parent_remoteness_is_read_from_flags_bits_8_and_9() {
        let span = |flags| ReceivedSpan {
            resource: Attributes::new(),
            scope_name: String::new(),
            scope_version: String::new(),
            trace_id: String::new(),
            span_id: String::new(),
            parent_span_id: String::new(),
            flags,
            name: String::new(),
            kind: SpanKind::Internal,
            attributes: Attributes::new(),
            events: Vec::new(),
            links: Vec::new(),
            status_code: StatusCode::Unset,
            status_message: String::new(),
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
        };
        assert_eq!(span(0x01).parent_is_remote(), None);
        assert_eq!(span(0x101).parent_is_remote(), Some(false));
        assert_eq!(span(0x301).parent_is_remote(), Some(true));
    }
}
