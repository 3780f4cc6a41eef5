//! Sources and sinks: where envelopes come from and where records go.
//!
//! The traits are the model's ([`hopline_model::ends`]), so that apps can provide their own
//! ends; the runtime's own is NDJSON ([`LineEnds`]). Every source and sink is bounded: a source
//! never yields more than the batch size at a time, and the NDJSON source holds its current
//! read chunk (sized for the longest line) plus a few earlier chunks kept for reuse.

mod ndjson;

pub use hopline_model::ends::{Ends, Sink, SinkError, Source, SourceError};
pub use ndjson::{LineEnds, MAX_LINE_BYTES, NdjsonSink, NdjsonSource};
