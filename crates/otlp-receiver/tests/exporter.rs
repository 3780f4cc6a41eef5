//! The receiver against the real exporter of the pinned set: the OpenTelemetry SDK 0.33 with
//! `opentelemetry-otlp` 0.33 over its blocking reqwest client, in both OTLP/HTTP encodings.
//! If these pass, what the receiver records is what hopline's exporter will send, and what
//! the exporter makes of the receiver's answers (success, failure, retry, timeout) is known.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_receiver::{Behaviour, Receiver};

const WAIT: Duration = Duration::from_secs(10);

/// One exporting "process": a tracer provider with a batch processor and an OTLP/HTTP exporter
/// pointed at the receiver.
struct Options {
    service: &'static str,
    protocol: Protocol,
    compression: Option<Compression>,
    timeout: Duration,
}

impl Options {
    fn new(service: &'static str, protocol: Protocol) -> Options {
        Options { service, protocol, compression: None, timeout: Duration::from_secs(5) }
    }

    fn provider(self, receiver: &Receiver) -> SdkTracerProvider {
        let headers = HashMap::from([("x-hopline-run".to_owned(), "run-42".to_owned())]);
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(receiver.traces_url())
            .with_protocol(self.protocol)
            .with_headers(headers)
            .with_timeout(self.timeout);
        if let Some(compression) = self.compression {
            builder = builder.with_compression(compression);
        }
        let exporter = builder.build().expect("an exporter for the receiver");
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(self.service).build())
            .build()
    }
}

/// Ends one span named `name` under `parent` and returns its context.
fn one_span(provider: &SdkTracerProvider, name: &'static str, parent: &Context) -> SpanContext {
    let tracer = provider.tracer("hopline");
    let mut span = tracer.span_builder(name).with_kind(SpanKind::Internal).start_with_context(&tracer, parent);
    let context = span.span_context().clone();
    span.end();
    context
}

#[test]
fn spans_from_two_exporting_processes_share_the_trace_and_link_parent_to_child() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    let ingest = Options::new("ingest", Protocol::HttpBinary).provider(&receiver);
    let policy = Options::new("policy", Protocol::HttpJson).provider(&receiver);

    // "ingest" starts the trace and sends a hop; "policy" continues it from the propagated
    // context, as a worker does from a frame's trace header.
    let ingest_tracer = ingest.tracer("hopline");
    let root = ingest_tracer.start("run");
    let root_context = Context::current_with_span(root);
    let mut send = ingest_tracer
        .span_builder("hop.send")
        .with_kind(SpanKind::Producer)
        .with_attributes([KeyValue::new("hop.group", "policy"), KeyValue::new("hop.batch", 32_i64)])
        .start_with_context(&ingest_tracer, &root_context);
    let sent = send.span_context().clone();
    send.end();
    root_context.span().end();
    let propagated = SpanContext::new(sent.trace_id(), sent.span_id(), sent.trace_flags(), true, TraceState::default());
    let policy_tracer = policy.tracer("hopline");
    let mut receive = policy_tracer
        .span_builder("hop.receive")
        .with_kind(SpanKind::Consumer)
        .with_attributes([KeyValue::new("hop.verified", true)])
        .start_with_context(&policy_tracer, &Context::new().with_remote_span_context(propagated));
    receive.set_status(Status::error("declined 3 events"));
    receive.end();
    ingest.force_flush().unwrap();
    policy.force_flush().unwrap();

    let spans = receiver.wait_for_spans(3, WAIT).unwrap();
    let find = |name: &str| spans.iter().find(|span| span.name == name).unwrap_or_else(|| panic!("no {name}"));
    let (run, send, receive) = (find("run"), find("hop.send"), find("hop.receive"));
    assert_eq!(run.trace_id, sent.trace_id().to_string());
    assert!(spans.iter().all(|span| span.trace_id == run.trace_id), "{spans:#?}");
    assert!(run.is_root());
    assert_eq!(send.parent_span_id, run.span_id);
    assert_eq!(send.parent_is_remote(), Some(false));
    assert_eq!(receive.parent_span_id, send.span_id);
    assert_eq!(receive.parent_is_remote(), Some(true));
    assert_eq!((run.service_name(), receive.service_name()), (Some("ingest"), Some("policy")));
    assert_eq!((send.kind, receive.kind), (otlp_receiver::SpanKind::Producer, otlp_receiver::SpanKind::Consumer));
    assert_eq!((send.attribute("hop.group"), send.attribute("hop.batch")), (Some("policy"), Some("32")));
    assert_eq!(receive.attribute("hop.verified"), Some("true"));
    assert_eq!(receive.status_code, otlp_receiver::StatusCode::Error);
    assert_eq!(receive.status_message, "declined 3 events");
    assert_eq!(run.scope_name, "hopline");

    let requests = receiver.requests();
    let mut protocols: Vec<_> = requests.iter().map(|request| request.protocol).collect();
    protocols.sort_by_key(|protocol| format!("{protocol:?}"));
    assert_eq!(protocols, [Some(otlp_receiver::Protocol::Json), Some(otlp_receiver::Protocol::Protobuf)]);
    assert!(requests.iter().all(|request| request.header("x-hopline-run") == Some("run-42")), "{requests:#?}");
    ingest.shutdown().unwrap();
    policy.shutdown().unwrap();
}

#[test]
fn gzip_compressed_exports_are_received_in_both_encodings() {
    let receiver = Receiver::start(Behaviour::Accept).unwrap();
    for protocol in [Protocol::HttpBinary, Protocol::HttpJson] {
        let options = Options { compression: Some(Compression::Gzip), ..Options::new("egress", protocol) };
        let provider = options.provider(&receiver);
        one_span(&provider, "write", &Context::new());
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
    }

    let spans = receiver.wait_for_spans(2, WAIT).unwrap();
    assert!(spans.iter().all(|span| span.name == "write" && span.service_name() == Some("egress")));
    assert!(receiver.requests().iter().all(|request| request.content_encoding.as_deref() == Some("gzip")));
}

#[test]
fn a_receiver_answering_500_makes_the_export_fail_once_without_retries() {
    let receiver = Receiver::start(Behaviour::Fail(500)).unwrap();
    let provider = Options::new("ingest", Protocol::HttpBinary).provider(&receiver);

    one_span(&provider, "run", &Context::new());
    let flushed = provider.force_flush();

    let error = flushed.expect_err("the export failed");
    assert!(error.to_string().contains("500"), "{error}");
    let requests = receiver.wait_for_requests(1, WAIT).unwrap();
    assert_eq!(requests.len(), 1, "500 is not retried");
    assert_eq!((requests[0].status, requests[0].span_count()), (500, 1));
    assert!(receiver.spans().is_empty());
    provider.shutdown().unwrap();
}

#[test]
fn a_receiver_answering_503_once_is_retried_and_the_spans_arrive_once() {
    let receiver = Receiver::start(Behaviour::Sequence(vec![Behaviour::Fail(503), Behaviour::Accept])).unwrap();
    let provider = Options::new("ingest", Protocol::HttpJson).provider(&receiver);

    one_span(&provider, "run", &Context::new());
    provider.force_flush().expect("the retry succeeded");

    let statuses: Vec<u16> = receiver.requests().iter().map(|request| request.status).collect();
    assert_eq!(statuses, [503, 200]);
    assert_eq!(receiver.spans().len(), 1);
    provider.shutdown().unwrap();
}

#[test]
fn a_receiver_slower_than_the_export_timeout_makes_the_export_fail() {
    let receiver = Receiver::start(Behaviour::Delay(Duration::from_secs(30))).unwrap();
    let options = Options { timeout: Duration::from_millis(300), ..Options::new("ingest", Protocol::HttpBinary) };
    let provider = options.provider(&receiver);

    one_span(&provider, "run", &Context::new());
    let started = Instant::now();
    let flushed = provider.force_flush();

    assert!(flushed.is_err(), "the export outlived its timeout: {flushed:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "gave up after {:?}", started.elapsed());
    assert!(!receiver.requests().is_empty(), "the request did arrive");
    provider.shutdown().unwrap();
}
