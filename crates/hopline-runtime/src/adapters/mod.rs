//! Sources and sinks: where envelopes come from and where records go.
//!
//! A source fills batches of envelopes and stamps their headers (sequence number,
//! correlation id); a sink writes the records of a batch. Both are bounded: a source never
//! yields more than the batch size at a time, and holds its current read chunk (sized for the
//! longest line) plus a few earlier chunks kept for reuse.

mod ndjson;

use hopline_model::{Envelope, Message};

pub use ndjson::{MAX_LINE_BYTES, NdjsonSink, NdjsonSource};

/// Where envelopes come from.
pub trait Source<M: Message> {
    /// Appends up to `max` envelopes to `out`. Returns `false` once the source is exhausted
    /// (the last envelopes may come with that `false`).
    fn next_batch(&mut self, out: &mut Vec<Envelope<M>>, max: usize) -> Result<bool, SourceError>;

    /// Bytes consumed so far and the total if known, for progress display.
    fn position(&self) -> (u64, Option<u64>);

    /// Whether the next batch would have to wait for input. The executor flushes the sink
    /// then, so that records reach it while the input is quiet (a stream on stdin, a slow
    /// upstream group) instead of waiting in a buffer for the next burst.
    fn idle(&mut self) -> bool {
        false
    }
}

/// Where records go.
pub trait Sink<M: Message> {
    /// Writes and removes every envelope of `batch`, in order.
    fn write_batch(&mut self, batch: &mut Vec<Envelope<M>>) -> Result<(), SinkError>;

    /// Flushes everything written so far.
    fn flush(&mut self) -> Result<(), SinkError>;

    /// Whether records written are still held in a buffer: only then is a flush worth asking
    /// the source whether input has gone quiet (which may cost it system calls).
    fn holds_unflushed(&self) -> bool {
        true
    }
}

/// A source that cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: line {line} is longer than {max} bytes")]
    LineTooLong { path: String, line: u64, max: usize },
    /// The link from the previous process group broke (multiprocess profile).
    #[error("the link from process group `{from}` broke: {message}")]
    Link {
        from: String,
        message: String,
        /// The peer hung up or the connection failed (rather than sending something wrong):
        /// most likely the consequence of that worker's own failure.
        hung_up: bool,
    },
}

/// A sink that cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write {path}")]
    Write { path: String, source: std::io::Error },
    #[error("the sink writes records, but event {seq} reached it as a `{kind}` message")]
    NotARecord { seq: u64, kind: &'static str },
    /// Frames could not be sent to the next process group (multiprocess profile).
    #[error("cannot send frames to process group `{to}`")]
    Link { to: String, source: std::io::Error },
}
