//! The attribute names hopline puts on its spans and resources, and how their values are read.
//!
//! The names are fixed: the runtime writes them, this crate and any OTLP backend read them.
//! The crate docs say what each one means. Values are read leniently (an integer attribute
//! written as a decimal string still counts), because a trace file may have passed through
//! other tools on its way here.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

/// Span attribute: the node a span covers (one node processing one event).
pub const NODE: &str = "hopline.node";
/// Resource attribute (or span attribute, which wins): the process group a span ran in.
pub const PROCESS_GROUP: &str = "hopline.process_group";
/// Span attribute on a hop's consumer span: the process group that handed the event over.
pub const HANDOFF_FROM: &str = "hopline.handoff_from";
/// Span attribute on hop spans: how many hops the event has crossed with this one (1 = first).
pub const ROUTE_HOP: &str = "hopline.route_hop";
/// Span attribute: the event's sequence number in its source (1-based; a line number).
pub const SEQ: &str = "hopline.seq";
/// Span attribute: the correlation id of the job or request, 32 lowercase hex digits.
pub const CORRELATION_ID: &str = "hopline.correlation_id";
/// Span attribute on node spans: what the node did with the event.
pub const OUTCOME: &str = "hopline.outcome";
/// Span attribute: the span's level, `"info"` or `"debug"`; a span without it is info.
pub const LEVEL: &str = "hopline.level";
/// The value of [`LEVEL`] that marks a debug span.
pub const LEVEL_DEBUG: &str = "debug";

/// Span attribute (OpenTelemetry messaging conventions): `"hopline"` on hop spans.
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// Span attribute (OpenTelemetry messaging conventions): `"send"` or `"receive"`.
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// Span attribute (OpenTelemetry messaging conventions): the receiving process group.
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";

/// Resource attribute (OpenTelemetry resource conventions): the service, `hopline`.
pub const SERVICE_NAME: &str = "service.name";
/// Resource attribute (OpenTelemetry resource conventions): one value per process of a run.
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
/// Resource attribute (OpenTelemetry resource conventions): the operating system's pid.
pub const PROCESS_PID: &str = "process.pid";

/// The value of `key` among `attributes`, if present and not empty.
pub(crate) fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

/// A value as text: strings as they are, numbers and booleans as written in JSON, arrays and
/// key-value lists as compact JSON.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => json(other).to_string(),
    }
}

/// A value as an unsigned integer: an integer value, or a string holding a decimal integer.
pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::IntValue(i) => u64::try_from(*i).ok(),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A value as plain JSON (for viewers that show arguments, not for OTLP): bytes as lowercase
/// hex, 64-bit integers as JSON numbers.
pub(crate) fn json(value: &Value) -> serde_json::Value {
    match value {
        Value::StringValue(s) => s.clone().into(),
        Value::IntValue(i) => (*i).into(),
        Value::BoolValue(b) => (*b).into(),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or_else(|| d.to_string().into(), Into::into),
        Value::BytesValue(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into(),
        Value::ArrayValue(array) => array.values.iter().map(any_json).collect::<Vec<_>>().into(),
        Value::KvlistValue(list) => list
            .values
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(serde_json::Value::Null, any_json)))
            .collect(),
        Value::StringValueStrindex(index) => (*index).into(),
    }
}

fn any_json(value: &AnyValue) -> serde_json::Value {
    value.value.as_ref().map_or(serde_json::Value::Null, json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    #[test]
    fn integers_written_as_strings_still_read_as_integers() {
        assert_eq!(as_u64(&Value::StringValue("17".into())), Some(17));
        assert_eq!(as_u64(&Value::IntValue(17)), Some(17));
        assert_eq!(as_u64(&Value::IntValue(-1)), None);
        assert_eq!(as_u64(&Value::StringValue("x".into())), None);
    }

    #[test]
    fn find_skips_attributes_whose_value_is_empty() {
        let attributes =
            vec![KeyValue { key: NODE.into(), value: None, ..Default::default() }, kv(SEQ, Value::IntValue(3))];
        assert_eq!(find(&attributes, NODE), None);
        assert_eq!(find(&attributes, SEQ), Some(&Value::IntValue(3)));
    }

    #[test]
    fn nested_values_read_as_compact_json() {
        let value = Value::KvlistValue(KeyValueList {
            values: vec![kv(
                "a",
                Value::ArrayValue(ArrayValue { values: vec![AnyValue { value: Some(Value::IntValue(1)) }] }),
            )],
        });
        assert_eq!(text(&value), r#"{"a":[1]}"#);
        assert_eq!(json(&Value::BytesValue(vec![0, 255])), serde_json::json!("00ff"));
    }
}
