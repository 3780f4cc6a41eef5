//! The JSON on each line is OTLP/JSON as the specification defines it
//! (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding), checked field by field
//! rather than trusted to the generated mapping.

use hopline_trace::otlp::any_value::Value;
use hopline_trace::otlp::{Span, TracesData};
use hopline_trace::{TraceLines, attributes as attr, write_line};
use serde_json::Value as Json;

use crate::fixture::{self, kv, s};

fn line_json(data: &TracesData) -> (String, Json) {
    let mut out = Vec::new();
    write_line(&mut out, data).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "one object, one line: {text}");
    let json = serde_json::from_str(&text).unwrap();
    (text, json)
}

fn spans_of(json: &Json) -> Vec<&Json> {
    let mut spans = Vec::new();
    for resource_spans in json["resourceSpans"].as_array().unwrap() {
        for scope_spans in resource_spans["scopeSpans"].as_array().unwrap() {
            spans.extend(scope_spans["spans"].as_array().unwrap());
        }
    }
    spans
}

fn is_lower_hex(text: &str, digits: usize) -> bool {
    text.len() == digits && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn keys_are_lower_camel_case(json: &Json, path: &str) {
    match json {
        Json::Object(map) => {
            for (key, value) in map {
                assert!(
                    key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && key.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{path}.{key} is not lowerCamelCase"
                );
                keys_are_lower_camel_case(value, &format!("{path}.{key}"));
            }
        }
        Json::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| keys_are_lower_camel_case(v, &format!("{path}[{i}]")))
        }
        _ => {}
    }
}

#[test]
fn ids_are_lowercase_hex_and_times_are_decimal_strings() {
    let run = fixture::three_process_run();
    for data in run.all() {
        let (_, json) = line_json(&data);
        let written = spans_of(&json);
        let spans: Vec<&Span> = data.resource_spans[0].scope_spans[0].spans.iter().collect();
        assert_eq!(written.len(), spans.len());
        for (json, span) in written.iter().zip(spans) {
            let trace_id = json["traceId"].as_str().unwrap();
            assert!(is_lower_hex(trace_id, 32), "traceId {trace_id}");
            assert!(is_lower_hex(json["spanId"].as_str().unwrap(), 16));
            let parent = json["parentSpanId"].as_str().unwrap_or("");
            assert!(parent.is_empty() || is_lower_hex(parent, 16), "parentSpanId {parent}");
            assert_eq!(json["startTimeUnixNano"], Json::String(span.start_time_unix_nano.to_string()));
            assert_eq!(json["endTimeUnixNano"], Json::String(span.end_time_unix_nano.to_string()));
            assert!(json["kind"].is_u64(), "span kind is an integer: {}", json["kind"]);
            assert!(json["status"]["code"].is_u64(), "status code is an integer");
        }
    }
    let (text, _) = line_json(&run.ingest[0]);
    assert!(text.contains(r#""traceId":"0af7651916cd43dd8448eb211c803101""#), "{text}");
    assert!(text.contains(r#""spanId":"b7ad6b7169200101""#), "{text}");
}

#[test]
fn field_names_are_lower_camel_case() {
    for data in fixture::three_process_run().all() {
        let (_, json) = line_json(&data);
        keys_are_lower_camel_case(&json, "$");
    }
}

#[test]
fn any_values_use_the_spec_encodings() {
    let mut data = fixture::three_process_run().ingest.remove(0);
    let span = &mut data.resource_spans[0].scope_spans[0].spans[0];
    span.end_time_unix_nano = u64::MAX;
    span.attributes = vec![
        kv("i", Value::IntValue(i64::MIN)),
        kv("b", Value::BoolValue(true)),
        kv("d", Value::DoubleValue(0.25)),
        kv("s", s("x")),
        kv("bytes", Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
        kv(
            "a",
            Value::ArrayValue(hopline_trace::otlp::ArrayValue {
                values: vec![hopline_trace::otlp::AnyValue { value: Some(Value::IntValue(7)) }],
            }),
        ),
    ];
    let (_, json) = line_json(&data);
    let span = spans_of(&json)[0];
    assert_eq!(span["endTimeUnixNano"], "18446744073709551615");
    let attributes = &span["attributes"];
    assert_eq!(attributes[0], serde_json::json!({"key": "i", "value": {"intValue": "-9223372036854775808"}}));
    assert_eq!(attributes[1]["value"], serde_json::json!({"boolValue": true}));
    assert_eq!(attributes[2]["value"], serde_json::json!({"doubleValue": 0.25}));
    assert_eq!(attributes[3]["value"], serde_json::json!({"stringValue": "x"}));
    assert_eq!(attributes[4]["value"], serde_json::json!({"bytesValue": "3q2+7w=="}));
    assert_eq!(attributes[5]["value"], serde_json::json!({"arrayValue": {"values": [{"intValue": "7"}]}}));

    let back: Vec<TracesData> =
        TraceLines::new(serde_json::to_vec(&json).unwrap().as_slice(), "x").collect::<Result<_, _>>().unwrap();
    assert_eq!(back, vec![data], "every encoding reads back to the same message");
}

/// The specification's own example (opentelemetry-proto `examples/trace.json`) on one line:
/// uppercase hex ids, no defaults written.
const SPEC_EXAMPLE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173","name":"I'm a server span","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","kind":2,"attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}}]}]}]}]}"#;

#[test]
fn the_specification_example_reads() {
    let data: Vec<TracesData> =
        TraceLines::new(SPEC_EXAMPLE.as_bytes(), "trace.json").collect::<Result<_, _>>().unwrap();
    let spans = hopline_trace::flatten(data[0].clone()).unwrap();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.trace_id().to_string(), "5b8efff798038103d269b633813fc60c");
    assert_eq!(span.span_id().to_string(), "eee19b7ec3c1b174");
    assert_eq!(span.parent_span_id().unwrap().to_string(), "eee19b7ec3c1b173");
    assert_eq!(span.start_ns(), 1_544_712_660_000_000_000);
    assert_eq!(span.duration_ns(), 1_000_000_000);
    assert_eq!(span.span().kind, 2);
    assert_eq!(span.origin().service_name().as_deref(), Some("my.service"));
    assert_eq!(span.origin().scope.name, "my.library");
    assert_eq!(span.attribute_text("my.span.attr").as_deref(), Some("some value"));
}

#[test]
fn integers_written_as_json_numbers_are_read_too() {
    let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c803101","spanId":"b7ad6b7169200101","name":"source","startTimeUnixNano":1764000000000000000,"endTimeUnixNano":1764000000000075000,"kind":1,"attributes":[{"key":"hopline.seq","value":{"intValue":17}}],"status":{"code":2,"message":"boom"}}]}]}]}"#;
    let data: Vec<TracesData> = TraceLines::new(line.as_bytes(), "numbers.jsonl").collect::<Result<_, _>>().unwrap();
    let spans = hopline_trace::flatten(data[0].clone()).unwrap();
    assert_eq!(spans[0].start_ns(), 1_764_000_000_000_000_000);
    assert_eq!(spans[0].duration_ns(), 75_000);
    assert_eq!(spans[0].seq(), Some(17));
    assert!(spans[0].is_error());
    assert_eq!(spans[0].attribute(attr::SEQ), Some(&Value::IntValue(17)));
}

#[test]
fn fields_this_version_does_not_know_are_ignored() {
    let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c803101","spanId":"b7ad6b7169200101","name":"x","futureField":{"a":[1]}}],"futureScopeField":1}]}],"future":true}"#;
    let data: Vec<TracesData> = TraceLines::new(line.as_bytes(), "future.jsonl").collect::<Result<_, _>>().unwrap();
    assert_eq!(data[0].resource_spans[0].scope_spans[0].spans[0].name, "x");
}
