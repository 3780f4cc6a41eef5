//! hopline's forensic trace: every span of a run, from every process, in one file.
//!
//! When one event goes wrong, one file says where it went: which node, in which process,
//! after which hop, and why. This crate is that file's format and the pure functions over it
//! (no network, no clocks): read and write it, merge the spans of several processes into it,
//! summarise it, and export it for a timeline viewer.
//!
//! # The file
//!
//! OTLP JSON lines: one OTLP/JSON `TracesData` object (`{"resourceSpans":[...]}`) per line,
//! exactly what the OpenTelemetry Collector's `file` exporter writes and its `otlpjsonfile`
//! receiver reads, so a collector can take the file as it is and a collector's file is a
//! trace this crate reads. The encoding is the OTLP/JSON one
//! (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>): lowerCamelCase
//! field names; trace and span ids as lowercase hex (not base64); 64-bit integers
//! (`startTimeUnixNano`, `endTimeUnixNano`, `intValue`) as decimal strings, read from numbers
//! too; enums (span kind, status code) as integers; `bytesValue` as base64. The messages and
//! their JSON mapping are the official ones (`opentelemetry-proto` 0.33); this crate's tests
//! hold that mapping to the specification. One known gap of that mapping: a `doubleValue` that
//! is NaN or infinite is written as `null` (JSON has no such numbers), and reads back empty.
//!
//! Reading ([`read_file`], [`TraceLines`]) holds one line at a time, bounds a line's length,
//! skips empty lines, and names the file, the line and what was wrong in every error, ids of
//! the wrong size included. Writing ([`write_file`], [`write_spans`]) puts the spans of one
//! process and scope together, at most [`SPANS_PER_LINE`] a line.
//!
//! # What hopline records
//!
//! Each process of a run is an OTLP **resource**: `service.name` (`hopline`),
//! `service.instance.id` (one per process and run), `process.pid`, `hopline.process_group`.
//! Each event is a **trace**: a root span at the source, a span per node that handles it,
//! and a producer/consumer pair of spans per hop between process groups. The attributes
//! ([`attributes`] has them as constants):
//!
//! | attribute | on | meaning |
//! | --- | --- | --- |
//! | `hopline.node` | node spans | the node that handled the event |
//! | `hopline.process_group` | resource (or a span, which wins) | the process group the span ran in |
//! | `hopline.handoff_from` | consumer spans | the process group that handed the event over |
//! | `hopline.route_hop` | hop spans | how many hops the event has crossed with this one (1 = first), an integer |
//! | `hopline.seq` | spans of an event | the event's sequence number in its source (1-based) |
//! | `hopline.correlation_id` | spans of an event | the job's correlation id, 32 lowercase hex digits |
//! | `hopline.outcome` | node spans | what the node did with the event |
//! | `hopline.level` | any span | `"debug"` for detail left out unless asked for; absent means info |
//!
//! Hop spans follow the OpenTelemetry messaging conventions: kind PRODUCER on the sending
//! side and CONSUMER on the receiving side (the consumer a child of the producer, or linked
//! to it), `messaging.system` = `"hopline"`, `messaging.operation.type` = `"send"` /
//! `"receive"`, `messaging.destination.name` = the receiving process group. A span whose
//! status code is ERROR is a failure; its status message says why.
//!
//! # The functions
//!
//! - [`merge`]: one set of spans from many inputs, repeats collapsed, each span with its own
//!   process, parents that cannot be found listed, debug spans left out unless asked for;
//! - [`summary()`]: per node and per hop latencies (count, p50, p99, max), errors with their
//!   events, the slowest events with their path; the [`summary`](mod@summary) module defines
//!   every figure;
//! - [`export_chrome`]: Chrome trace-event JSON for Perfetto and chrome://tracing, one row per
//!   process, an arrow per hop (the [`chrome`] module describes the layout).
//!
//! Every output is sorted: the same spans in any order give the same result.

pub mod attributes;
pub mod chrome;
mod file;
mod hops;
mod ids;
mod merge;
mod span;
pub mod summary;

pub use chrome::export_chrome;
pub use file::{
    MAX_LINE_BYTES, SPANS_PER_LINE, TraceFileError, TraceLines, read_file, write_file, write_line, write_spans,
};
pub use ids::{SpanId, TraceId};
pub use merge::{MergeOptions, MergeReport, SpanLevel, merge};
pub use span::{MalformedSpan, Origin, TracedSpan, check, flatten, to_traces_data};
pub use summary::{
    ErrorSpan, HopStats, LatencyStats, NodeStats, PathStep, SlowTrace, Summary, format_duration, summary,
};

/// The OTLP messages this crate reads and writes (`opentelemetry-proto` 0.33, with their
/// OTLP/JSON serde mapping).
pub mod otlp {
    pub use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
    };
    pub use opentelemetry_proto::tonic::resource::v1::Resource;
    pub use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span, Status, TracesData, span, status,
    };
}
