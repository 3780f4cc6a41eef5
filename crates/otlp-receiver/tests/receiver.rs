//! The receiver over real HTTP: bodies built with the official types or written by hand to
//! the OTLP/JSON specification, posted with a plain HTTP client, and every behaviour and
//! rejection seen from both sides (what the client is answered, what the receiver recorded).

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use otlp_receiver::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use otlp_receiver::opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use otlp_receiver::opentelemetry_proto::tonic::resource::v1::Resource;
use otlp_receiver::opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use otlp_receiver::prost::Message;
use otlp_receiver::{Behaviour, ExportTraceServiceRequest, MAX_BODY_BYTES, Protocol, Receiver, SpanKind, StatusCode};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
const WAIT: Duration = Duration::from_secs(10);

/// What the client got back.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn post(url: &str, content_type: Option<&str>, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut request = reqwest::blocking::Client::new().post(url).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().expect("the receiver answers");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|value| value.to_str().expect("ASCII content type").to_owned());
    Answer { status, content_type, body: response.bytes().expect("a whole answer").to_vec() }
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        key_strindex: 0,
    }
}

fn value(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), key_strindex: 0 }
}

const TRACE_ID: [u8; 16] =
    [0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c];
const ROOT_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73];
const CHILD_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];

/// Two spans of service `ingest`, a root and its child, built with the official types.
fn two_spans() -> ExportTraceServiceRequest {
    let root = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: ROOT_ID.to_vec(),
        name: "run".to_owned(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 9_000,
        ..Default::default()
    };
    let child = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: CHILD_ID.to_vec(),
        parent_span_id: ROOT_ID.to_vec(),
        flags: 0x301,
        name: "hop".to_owned(),
        kind: SpanKind::Producer as i32,
        start_time_unix_nano: 2_000,
        end_time_unix_nano: 3_000,
        attributes: vec![
            string("hop.group", "policy"),
            value("hop.batch", any_value::Value::IntValue(32)),
            value("hop.signed", any_value::Value::BoolValue(true)),
            value("hop.ratio", any_value::Value::DoubleValue(0.5)),
        ],
        events: vec![span::Event {
            time_unix_nano: 2_500,
            name: "frame.sent".to_owned(),
            attributes: vec![value("bytes", any_value::Value::IntValue(512))],
            dropped_attributes_count: 0,
        }],
        links: vec![span::Link {
            trace_id: TRACE_ID.to_vec(),
            span_id: ROOT_ID.to_vec(),
            attributes: vec![string("why", "fan-in")],
            ..Default::default()
        }],
        status: Some(Status { message: "declined".to_owned(), code: StatusCode::Error as i32 }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", "ingest"), value("process.pid", any_value::Value::IntValue(7))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "hopline".to_owned(),
                    version: "0.1.0".to_owned(),
                    ..Default::default()
                }),
                spans: vec![root, child],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A body written by hand to the OTLP/JSON rules: lowerCamelCase keys, hex ids, 64-bit
/// integers as strings (and once as a number, which receivers must also take), enums as
/// integers, and a field from the future that must be ignored.
const SPEC_JSON: &str = r#"{
  "resourceSpans": [{
    "resource": {
      "attributes": [{ "key": "service.name", "value": { "stringValue": "egress" } }]
    },
    "scopeSpans": [{
      "scope": { "name": "my.library", "version": "1.0.0" },
      "spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "eee19b7ec3c1b173",
        "flags": 769,
        "name": "I'm a server span",
        "kind": 2,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": 1544712661000000000,
        "attributes": [
          { "key": "my.span.attr", "value": { "stringValue": "some value" } },
          { "key": "count", "value": { "intValue": "42" } },
          { "key": "ok", "value": { "boolValue": false } },
          { "key": "ratio", "value": { "doubleValue": 0.25 } },
          { "key": "tags", "value": { "arrayValue": { "values": [{ "stringValue": "a" }, { "intValue": "2" }] } } }
        ],
        "events": [{ "timeUnixNano": "1544712660500000000", "name": "checkpoint" }],
        "status": { "code": 1, "message": "" },
        "aFieldFromTheFuture": { "nested": [1, 2, 3] }
      }]
    }]
  }]
}"#;

#[test]
fn protobuf_bodies_are_decoded_and_flattened_into_spans() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let sent = two_spans();

    let answer = post(&receiver.traces_url(), Some(PROTOBUF), &[], sent.encode_to_vec());

    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type.as_deref(), Some(PROTOBUF));
    assert_eq!(ExportTraceServiceResponse::decode(&answer.body[..]).unwrap(), ExportTraceServiceResponse::default());
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].protocol, Some(Protocol::Protobuf));
    assert_eq!(requests[0].traces.as_ref(), Some(&sent), "decoded exactly what was sent");
    assert_eq!(requests[0].body_len, sent.encoded_len());

    let spans = receiver.spans();
    assert_eq!(spans.len(), 2);
    let (root, child) = (&spans[0], &spans[1]);
    assert_eq!(root.service_name(), Some("ingest"));
    assert_eq!(root.resource.get("process.pid").map(String::as_str), Some("7"));
    assert_eq!((root.scope_name.as_str(), root.scope_version.as_str()), ("hopline", "0.1.0"));
    assert_eq!(root.trace_id, "5b8efff798038103d269b633813fc60c");
    assert_eq!(root.span_id, "eee19b7ec3c1b173");
    assert!(root.is_root());
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.status_code, StatusCode::Unset);
    assert_eq!((root.start_time_unix_nano, root.end_time_unix_nano), (1_000, 9_000));

    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(child.parent_span_id, root.span_id);
    assert_eq!(child.parent_is_remote(), Some(true));
    assert_eq!(child.kind, SpanKind::Producer);
    assert_eq!(child.attribute("hop.group"), Some("policy"));
    assert_eq!(child.attribute("hop.batch"), Some("32"));
    assert_eq!(child.attribute("hop.signed"), Some("true"));
    assert_eq!(child.attribute("hop.ratio"), Some("0.5"));
    assert_eq!((child.status_code, child.status_message.as_str()), (StatusCode::Error, "declined"));
    assert_eq!(child.events.len(), 1);
    assert_eq!((child.events[0].name.as_str(), child.events[0].time_unix_nano), ("frame.sent", 2_500));
    assert_eq!(child.events[0].attributes.get("bytes").map(String::as_str), Some("512"));
    assert_eq!(child.links.len(), 1);
    assert_eq!(
        (child.links[0].trace_id.as_str(), child.links[0].span_id.as_str()),
        (root.trace_id.as_str(), root.span_id.as_str())
    );
    assert_eq!(child.links[0].attributes.get("why").map(String::as_str), Some("fan-in"));
}

#[test]
fn spec_conformant_json_bodies_are_decoded_with_hex_ids_and_string_integers() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();

    let answer = post(&receiver.traces_url(), Some("application/json; charset=utf-8"), &[], SPEC_JSON.into());

    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.content_type.as_deref(), Some(JSON));
    let response: ExportTraceServiceResponse = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(response, ExportTraceServiceResponse::default());
    assert_eq!(receiver.requests()[0].protocol, Some(Protocol::Json));

    let spans = receiver.spans();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.service_name(), Some("egress"));
    assert_eq!(span.trace_id, "5b8efff798038103d269b633813fc60c");
    assert_eq!(span.span_id, "eee19b7ec3c1b174");
    assert_eq!(span.parent_span_id, "eee19b7ec3c1b173");
    assert_eq!(span.parent_is_remote(), Some(true));
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(span.attribute("my.span.attr"), Some("some value"));
    assert_eq!(span.attribute("count"), Some("42"));
    assert_eq!(span.attribute("ok"), Some("false"));
    assert_eq!(span.attribute("ratio"), Some("0.25"));
    assert_eq!(span.attribute("tags"), Some(r#"["a",2]"#));
    assert_eq!(span.events[0].name, "checkpoint");
    assert_eq!(span.events[0].time_unix_nano, 1_544_712_660_500_000_000);
    assert_eq!(span.status_code, StatusCode::Ok);
}

#[test]
fn json_and_protobuf_encodings_of_the_same_request_decode_alike() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let sent = two_spans();

    post(&receiver.traces_url(), Some(PROTOBUF), &[], sent.encode_to_vec());
    post(&receiver.traces_url(), Some(JSON), &[], serde_json::to_vec(&sent).unwrap());

    let requests = receiver.requests();
    assert_eq!(requests.iter().map(|request| request.status).collect::<Vec<_>>(), [200, 200]);
    assert_eq!(requests[0].traces, requests[1].traces);
    let spans = receiver.spans();
    assert_eq!(spans[..2], spans[2..]);
}

#[test]
fn every_header_is_recorded_with_lower_case_names() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();

    post(
        &receiver.traces_url(),
        Some(PROTOBUF),
        &[("X-Hopline-Run", "run-7"), ("authorization", "Bearer t0ken")],
        two_spans().encode_to_vec(),
    );

    let request = &receiver.requests()[0];
    assert_eq!(request.header("x-hopline-run"), Some("run-7"));
    assert_eq!(request.header("Authorization"), Some("Bearer t0ken"));
    assert!(request.headers.contains(&("x-hopline-run".to_owned(), "run-7".to_owned())));
    assert_eq!(request.content_type.as_deref(), Some(PROTOBUF));
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/traces");
}

#[test]
fn gzip_bodies_are_decompressed_and_their_compressed_length_recorded() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(SPEC_JSON.as_bytes()).unwrap();
    let compressed = encoder.finish().unwrap();
    let compressed_len = compressed.len();

    let answer = post(&receiver.traces_url(), Some(JSON), &[("content-encoding", "gzip")], compressed);

    assert_eq!(answer.status, 200);
    let request = &receiver.requests()[0];
    assert_eq!(request.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(request.body_len, compressed_len);
    assert_eq!(receiver.spans()[0].name, "I'm a server span");
}

#[test]
fn failing_receivers_answer_the_status_and_still_record_the_request() {
    let receiver = Receiver::start(Behaviour::Fail(500)).unwrap();

    let answer = post(&receiver.traces_url(), Some(JSON), &[], SPEC_JSON.into());

    assert_eq!(answer.status, 500);
    assert_eq!(answer.content_type.as_deref(), Some(JSON));
    let status: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(status["code"], 13, "a google.rpc.Status: {status}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].status, 500);
    assert!(!requests[0].accepted());
    assert_eq!(requests[0].span_count(), 1, "the body was decoded");
    assert_eq!(requests[0].error, None, "a failure ordered by the behaviour is not a decoding error");
    assert!(receiver.spans().is_empty(), "spans of failed requests are not received");
}

#[test]
fn delayed_answers_come_after_the_delay_but_the_request_is_recorded_on_arrival() {
    let delay = Duration::from_millis(300);
    let receiver = Receiver::start(Behaviour::Delay(delay)).unwrap();
    let url = receiver.traces_url();

    let started = Instant::now();
    let client = thread::spawn(move || {
        let answer = post(&url, Some(PROTOBUF), &[], two_spans().encode_to_vec());
        (answer.status, started.elapsed())
    });
    receiver.wait_for_spans(2, WAIT).unwrap();
    let seen_after = started.elapsed();
    let (status, answered_after) = client.join().unwrap();

    assert_eq!(status, 200);
    assert!(answered_after >= delay, "answered after {answered_after:?}, before the {delay:?} delay");
    assert!(seen_after < answered_after, "recorded after {seen_after:?}, answered after {answered_after:?}");
}

#[test]
fn sequences_answer_request_by_request_and_repeat_their_last_step() {
    let receiver = Receiver::start(Behaviour::Sequence(vec![Behaviour::Fail(503), Behaviour::Accept])).unwrap();
    let body = two_spans().encode_to_vec();

    let statuses: Vec<u16> =
        (0..3).map(|_| post(&receiver.traces_url(), Some(PROTOBUF), &[], body.clone()).status).collect();

    assert_eq!(statuses, [503, 200, 200]);
    assert_eq!(receiver.spans().len(), 4, "two accepted requests of two spans");
}

#[test]
fn a_new_behaviour_applies_to_later_requests_and_restarts_sequences() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let body = two_spans().encode_to_vec();
    let send = || post(&receiver.traces_url(), Some(PROTOBUF), &[], body.clone()).status;

    assert_eq!(send(), 200);
    receiver.set_behaviour(Behaviour::Sequence(vec![Behaviour::Fail(429), Behaviour::Accept])).unwrap();
    assert_eq!(send(), 429);
    assert_eq!(send(), 200);
}

#[test]
fn invalid_behaviours_are_refused() {
    for behaviour in [
        Behaviour::Fail(200),
        Behaviour::Fail(99),
        Behaviour::Sequence(vec![]),
        Behaviour::Sequence(vec![Behaviour::Sequence(vec![Behaviour::Accept])]),
    ] {
        let error = Receiver::start(behaviour.clone()).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{behaviour:?}");
    }
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    assert!(receiver.set_behaviour(Behaviour::Fail(302)).is_err());
}

#[test]
fn unknown_content_types_and_encodings_are_answered_415_and_recorded() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let body = two_spans().encode_to_vec();

    let text = post(&receiver.traces_url(), Some("text/plain"), &[], body.clone());
    let missing = post(&receiver.traces_url(), None, &[], body.clone());
    let zstd = post(&receiver.traces_url(), Some(PROTOBUF), &[("content-encoding", "zstd")], body);

    assert_eq!([text.status, missing.status, zstd.status], [415, 415, 415]);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].error.as_deref().unwrap().contains("text/plain"), "{:?}", requests[0].error);
    assert_eq!(requests[0].protocol, None);
    assert!(requests[2].error.as_deref().unwrap().contains("zstd"), "{:?}", requests[2].error);
    assert!(requests.iter().all(|request| request.traces.is_none()));
    assert!(receiver.spans().is_empty());
}

#[test]
fn bodies_that_do_not_decode_are_answered_400_and_recorded() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    // OTLP/JSON ids are hex; the generic protobuf JSON mapping would write base64.
    let base64_ids = SPEC_JSON.replace("5b8efff798038103d269b633813fc60c", "W47/95gDgQPSabYzgT/GDA==");
    let mut short_trace_id = two_spans();
    short_trace_id.resource_spans[0].scope_spans[0].spans[0].trace_id.truncate(8);

    let garbage = post(&receiver.traces_url(), Some(PROTOBUF), &[], vec![0xff; 64]);
    let not_json = post(&receiver.traces_url(), Some(JSON), &[], b"{\"resourceSpans\": [".to_vec());
    let base64 = post(&receiver.traces_url(), Some(JSON), &[], base64_ids.into());
    let short = post(&receiver.traces_url(), Some(PROTOBUF), &[], short_trace_id.encode_to_vec());
    let not_gzip = post(&receiver.traces_url(), Some(JSON), &[("content-encoding", "gzip")], SPEC_JSON.into());

    assert_eq!([garbage.status, not_json.status, base64.status, short.status, not_gzip.status], [400; 5]);
    let status: serde_json::Value = serde_json::from_slice(&not_json.body).unwrap();
    assert!(status["message"].as_str().unwrap().contains("OTLP/JSON"), "{status}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 5);
    assert!(requests.iter().all(|request| request.status == 400 && request.error.is_some() && request.body_len > 0));
    assert!(requests[3].error.as_deref().unwrap().contains("trace id"), "{:?}", requests[3].error);
    assert!(receiver.spans().is_empty());
}

#[test]
fn wrong_paths_and_methods_are_answered_404_and_405() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();

    let metrics = post(&format!("{}/v1/metrics", receiver.endpoint()), Some(PROTOBUF), &[], Vec::new());
    let get = reqwest::blocking::get(receiver.traces_url()).unwrap().status().as_u16();

    assert_eq!((metrics.status, get), (404, 405));
    let requests = receiver.requests();
    assert_eq!((requests[0].path.as_str(), requests[1].method.as_str()), ("/v1/metrics", "GET"));
}

#[test]
fn bodies_over_the_limit_are_answered_413() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();

    let answer = post(&receiver.traces_url(), Some(PROTOBUF), &[], vec![0; MAX_BODY_BYTES + 1]);

    assert_eq!(answer.status, 413);
    assert_eq!(receiver.requests()[0].status, 413);
}

#[test]
fn waiting_for_spans_wakes_when_they_arrive() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let url = receiver.traces_url();

    let sender = thread::spawn(move || {
        for _ in 0..3 {
            assert_eq!(post(&url, Some(PROTOBUF), &[], two_spans().encode_to_vec()).status, 200);
        }
    });
    let spans = receiver.wait_for_spans(6, WAIT).unwrap();
    sender.join().unwrap();

    assert_eq!(spans.len(), 6);
}

#[test]
fn waiting_times_out_with_an_account_of_what_did_arrive() {
    let receiver = Receiver::start(Behaviour::Fail(500)).unwrap();
    post(&receiver.traces_url(), Some(PROTOBUF), &[], two_spans().encode_to_vec());
    post(&receiver.traces_url(), Some("text/plain"), &[], Vec::new());

    let started = Instant::now();
    let timeout = receiver.wait_for_spans(1, Duration::from_millis(200)).unwrap_err();

    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!((timeout.wanted, timeout.got, timeout.requests.len()), (1, 0, 2));
    let report = timeout.to_string();
    assert!(report.contains("waiting for 1 spans: got 0, in 2 request(s)"), "{report}");
    assert!(report.contains("-> 500 (2 spans)"), "{report}");
    assert!(report.contains("-> 415 (unsupported Content-Type"), "{report}");
    assert_eq!(receiver.wait_for_requests(2, Duration::ZERO).unwrap().len(), 2);
}

#[test]
fn dropping_the_receiver_closes_its_port_even_with_an_answer_pending() {
    let receiver = Receiver::start(Behaviour::Delay(Duration::from_secs(60))).unwrap();
    let addr = receiver.local_addr();
    let url = receiver.traces_url();
    let client = thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(url)
            .header("content-type", PROTOBUF)
            .body(two_spans().encode_to_vec())
            .send()
            .map(|response| response.status().as_u16())
    });
    receiver.wait_for_requests(1, WAIT).unwrap();

    let started = Instant::now();
    drop(receiver);

    assert!(started.elapsed() < Duration::from_secs(5), "drop waited for the delayed answer");
    assert!(client.join().unwrap().is_err(), "the pending request's connection was closed");
    assert!(TcpStream::connect(addr).is_err(), "{addr} still accepts connections");
}
