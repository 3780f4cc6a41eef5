//! A realistic run to test against: fund_load split over three worker processes.
//!
//! `ingest` (parse, time_keys, idempotency) → `policy` (features, policies) → `egress` (format).
//! Three events, 1 ms apart. Each has a root span at the source, a span per node, and a
//! producer/consumer pair per hop, the consumer a child of the producer and the next nodes
//! children of the consumer. Event 3 fails in `policies` (status ERROR), so it never reaches
//! egress. Event 1 has one debug span. Durations are chosen so that every figure of the
//! summary is known (microseconds from each event's start):
//!
//! | span | event k |
//! | --- | --- |
//! | source (root, ingest) | 0 – 75 |
//! | parse | 5 – 5+10k |
//! | time_keys | 40 – 45 |
//! | idempotency | 50 – 54 |
//! | send policy (producer, hop 1) | 60 – 70 |
//! | receive ingest (consumer, hop 1) | 200 – 200+10k |
//! | features | 220 – 228 |
//! | policies | 230 – 230+20k (event 3: ERROR) |
//! | lookup customer window (debug, event 1) | 232 – 235 |
//! | send egress (producer, hop 2; events 1, 2) | 300 – 305 |
//! | receive policy (consumer, hop 2) | 400 – 410+k |
//! | format | 420 – 425+k |

use hopline_trace::attributes as attr;
use hopline_trace::otlp::any_value::Value;
use hopline_trace::otlp::span::SpanKind;
use hopline_trace::otlp::status::StatusCode;
use hopline_trace::otlp::{
    AnyValue, InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans, Span, Status, TracesData,
};

/// 2025-11-24T16:00:00Z, in nanoseconds.
pub const T0: u64 = 1_764_000_000_000_000_000;
/// What event 3's `policies` span says.
pub const FAILURE: &str = "node error: no limit table for customer 528";

pub const GROUPS: [&str; 3] = ["ingest", "policy", "egress"];
pub const PIDS: [i64; 3] = [28410, 28411, 28412];

pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

pub fn s(text: &str) -> Value {
    Value::StringValue(text.to_string())
}

pub fn trace_id(seq: u8) -> Vec<u8> {
    vec![0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, seq]
}

pub fn span_id(seq: u8, n: u8) -> Vec<u8> {
    vec![0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, seq, n]
}

/// Numbers of the spans of one event, for `span_id`.
pub mod n {
    pub const SOURCE: u8 = 1;
    pub const PARSE: u8 = 2;
    pub const TIME_KEYS: u8 = 3;
    pub const IDEMPOTENCY: u8 = 4;
    pub const SEND_POLICY: u8 = 5;
    pub const RECEIVE_INGEST: u8 = 6;
    pub const FEATURES: u8 = 7;
    pub const POLICIES: u8 = 8;
    pub const LOOKUP: u8 = 9;
    pub const SEND_EGRESS: u8 = 10;
    pub const RECEIVE_POLICY: u8 = 11;
    pub const FORMAT: u8 = 12;
}

pub fn resource(group: usize) -> Resource {
    Resource {
        attributes: vec![
            kv(attr::SERVICE_NAME, s("hopline")),
            kv(attr::SERVICE_INSTANCE_ID, s(&format!("5f0c9a2e-run-{}", GROUPS[group]))),
            kv(attr::PROCESS_PID, Value::IntValue(PIDS[group])),
            kv(attr::PROCESS_GROUP, s(GROUPS[group])),
        ],
        ..Default::default()
    }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope { name: "hopline-runtime".into(), version: "0.1.0".into(), ..Default::default() }
}

struct Event {
    seq: u8,
    start: u64,
}

impl Event {
    fn at(&self, micros: u64) -> u64 {
        self.start + micros * 1_000
    }

    fn common(&self) -> Vec<KeyValue> {
        vec![
            kv(attr::SEQ, Value::IntValue(i64::from(self.seq))),
            kv(attr::CORRELATION_ID, s("9f86d081884c7d659a2feaa0c55ad015")),
        ]
    }

    fn span(
        &self,
        n: u8,
        parent: Option<u8>,
        name: &str,
        kind: SpanKind,
        (from, to): (u64, u64),
        extra: Vec<KeyValue>,
    ) -> Span {
        let mut attributes = self.common();
        attributes.extend(extra);
        Span {
            trace_id: trace_id(self.seq),
            span_id: span_id(self.seq, n),
            parent_span_id: parent.map(|p| span_id(self.seq, p)).unwrap_or_default(),
            flags: 0x101,
            name: name.to_string(),
            kind: kind as i32,
            start_time_unix_nano: self.at(from),
            end_time_unix_nano: self.at(to),
            attributes,
            status: Some(Status::default()),
            ..Default::default()
        }
    }

    fn node(&self, n: u8, parent: u8, node: &str, from: u64, to: u64) -> Span {
        let extra = vec![kv(attr::NODE, s(node)), kv(attr::OUTCOME, s("emitted"))];
        self.span(n, Some(parent), node, SpanKind::Internal, (from, to), extra)
    }

    /// The producer span of hop `hop` (1: ingest → policy, 2: policy → egress).
    fn send(&self, n: u8, parent: u8, hop: usize, from: u64, to: u64) -> Span {
        let to_group = GROUPS[hop];
        let extra = vec![
            kv(attr::ROUTE_HOP, Value::IntValue(hop as i64)),
            kv(attr::MESSAGING_SYSTEM, s("hopline")),
            kv(attr::MESSAGING_OPERATION_TYPE, s("send")),
            kv(attr::MESSAGING_DESTINATION_NAME, s(to_group)),
        ];
        self.span(n, Some(parent), &format!("send {to_group}"), SpanKind::Producer, (from, to), extra)
    }

    /// The consumer span of hop `hop`.
    fn receive(&self, n: u8, parent: u8, hop: usize, from: u64, to: u64) -> Span {
        let (from_group, own_group) = (GROUPS[hop - 1], GROUPS[hop]);
        let extra = vec![
            kv(attr::ROUTE_HOP, Value::IntValue(hop as i64)),
            kv(attr::HANDOFF_FROM, s(from_group)),
            kv(attr::MESSAGING_SYSTEM, s("hopline")),
            kv(attr::MESSAGING_OPERATION_TYPE, s("receive")),
            kv(attr::MESSAGING_DESTINATION_NAME, s(own_group)),
        ];
        self.span(n, Some(parent), &format!("receive {from_group}"), SpanKind::Consumer, (from, to), extra)
    }
}

/// The spans each process recorded, one `TracesData` line per event (a flush per event).
pub struct Run {
    pub ingest: Vec<TracesData>,
    pub policy: Vec<TracesData>,
    pub egress: Vec<TracesData>,
}

impl Run {
    /// Every line of every process, process by process.
    pub fn all(&self) -> Vec<TracesData> {
        self.ingest.iter().chain(&self.policy).chain(&self.egress).cloned().collect()
    }
}

fn line(group: usize, spans: Vec<Span>) -> TracesData {
    TracesData {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(group)),
            scope_spans: vec![ScopeSpans { scope: Some(scope()), spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

pub fn three_process_run() -> Run {
    let mut run = Run { ingest: Vec::new(), policy: Vec::new(), egress: Vec::new() };
    for seq in 1..=3u8 {
        let k = u64::from(seq);
        let e = Event { seq, start: T0 + (k - 1) * 1_000_000 };
        run.ingest.push(line(
            0,
            vec![
                e.span(n::SOURCE, None, "source", SpanKind::Internal, (0, 75), vec![]),
                e.node(n::PARSE, n::SOURCE, "parse", 5, 5 + 10 * k),
                e.node(n::TIME_KEYS, n::SOURCE, "time_keys", 40, 45),
                e.node(n::IDEMPOTENCY, n::SOURCE, "idempotency", 50, 54),
                e.send(n::SEND_POLICY, n::SOURCE, 1, 60, 70),
            ],
        ));
        let mut policy = vec![
            e.receive(n::RECEIVE_INGEST, n::SEND_POLICY, 1, 200, 200 + 10 * k),
            e.node(n::FEATURES, n::RECEIVE_INGEST, "features", 220, 228),
            e.node(n::POLICIES, n::RECEIVE_INGEST, "policies", 230, 230 + 20 * k),
        ];
        if seq == 1 {
            let debug = vec![kv(attr::LEVEL, s("debug"))];
            policy.push(e.span(
                n::LOOKUP,
                Some(n::POLICIES),
                "lookup customer window",
                SpanKind::Internal,
                (232, 235),
                debug,
            ));
        }
        if seq == 3 {
            let policies = policy.iter_mut().find(|span| span.name == "policies").unwrap();
            policies.status = Some(Status { message: FAILURE.to_string(), code: StatusCode::Error as i32 });
            policies.attributes.retain(|kv| kv.key != attr::OUTCOME);
            policies.attributes.push(kv(attr::OUTCOME, s("error")));
        } else {
            policy.push(e.send(n::SEND_EGRESS, n::RECEIVE_INGEST, 2, 300, 305));
            run.egress.push(line(
                2,
                vec![
                    e.receive(n::RECEIVE_POLICY, n::SEND_EGRESS, 2, 400, 410 + k),
                    e.node(n::FORMAT, n::RECEIVE_POLICY, "format", 420, 425 + k),
                ],
            ));
        }
        run.policy.push(line(1, policy));
    }
    run
}

/// Spans in the run: 15 in ingest, 12 in policy (one debug), 4 in egress.
pub const SPANS: usize = 31;
