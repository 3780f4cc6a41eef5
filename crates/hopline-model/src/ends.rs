//! The ends of a pipeline: where envelopes come from ([`Source`]) and where they go
//! ([`Sink`]), and how an app names the kinds it can open ([`Ends`]).
//!
//! The runtime provides the NDJSON ends (files, standard input and output) for every app whose
//! messages are lines and records; an app that reads or writes something else (the observer's
//! PostgreSQL change source and its checkpoint sink) implements [`Ends`] for its own kinds.
//! The traits live here, with no I/O, so that apps depend on the model only.

use std::path::Path;

use crate::config::{ConfigError, PipelineConfig};
use crate::envelope::{CorrelationId, Envelope};
use crate::node::Message;

/// The message kinds a config's source emits and its sink consumes: the two ends of the chain
/// the registry checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndKinds {
    pub source_emits: &'static [&'static str],
    pub sink_consumes: &'static [&'static str],
}

/// The adapter kinds an app's pipelines can use, and how to open them.
///
/// The runtime calls [`Ends::check`] before it builds any node (so a config error about the
/// ends comes before anything is opened), opens the source once every node is built, and
/// creates the sink last: a config or source error never creates or truncates an output.
pub trait Ends<M: Message>: Sync {
    /// Checks `config.source` and `config.sink` without I/O (their kinds are known, their
    /// params read) and says what they emit and consume.
    fn check(&self, config: &PipelineConfig) -> Result<EndKinds, ConfigError>;

    /// Opens the source. `input` is what the runtime resolved for it: for `kind: ndjson`, the
    /// path (the config's, relative to `base_dir`, or the command line's), `-` for standard
    /// input. An app's kinds read their settings from `config.source.params`.
    fn open_source(
        &self,
        config: &PipelineConfig,
        base_dir: &Path,
        input: &str,
        correlation_id: CorrelationId,
    ) -> Result<Box<dyn Source<M>>, SourceError>;

    /// Creates the sink, as [`Ends::open_source`] opens the source (`output` is the resolved
    /// path for `kind: ndjson`, `-` for standard output).
    fn create_sink(
        &self,
        config: &PipelineConfig,
        base_dir: &Path,
        output: &str,
    ) -> Result<Box<dyn Sink<M>>, SinkError>;
}

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

    /// Whether `next_batch` returns within a short while (a fraction of a second) even when
    /// no input comes, with an empty batch: then a stop request is seen promptly, and the
    /// memory profile drains on SIGINT and SIGTERM instead of ending at once.
    fn stops_promptly(&self) -> bool {
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
    /// An app's source cannot go on (its `kind` names it, `message` says why and where).
    #[error("the `{kind}` source: {message}")]
    App { kind: String, message: String },
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
    /// An app's sink cannot go on (its `kind` names it, `message` says why and where).
    #[error("the `{kind}` sink: {message}")]
    App { kind: String, message: String },
    /// Frames could not be sent to the next process group (multiprocess profile).
    #[error("cannot send frames to process group `{to}`")]
    Link { to: String, source: std::io::Error },
}
