//! hopline's model: the vocabulary every other crate speaks, with no I/O.
//!
//! - [`envelope`]: one event in flight, its payload and the header that travels with it
//!   (sequence number, correlation id, trace context, route).
//! - [`node`]: one step of a pipeline, the context it receives and what it may report.
//! - [`registry`]: node kinds by name, and the checks that turn a config into a [`Pipeline`].
//! - [`config`]: the YAML pipeline config, strictly validated, every error with file, key path and line;
//!   under the multiprocess profile, the process groups and the transport settings; under either,
//!   the tracing settings and their precedence with the `OTEL_*` variables and the command line.
//! - [`ends`]: sources and sinks, and the adapter kinds an app can open ([`Ends`]).
//! - [`wire`]: how a message crosses a process boundary (its app's compact binary encoding).
//!
//! Nothing here reads a file, opens a socket or starts a thread: the runtime does that.

pub mod clock;
pub mod config;
pub mod ends;
pub mod envelope;
pub mod node;
pub mod registry;
pub mod trace;
pub mod wire;

pub use config::{
    AdapterConfig, ConfigError, KeySource, MultiprocessConfig, ObservabilityConfig, Params, PipelineConfig,
    ProcessGroup, Profile, RuntimeConfig, TracingConfig, TransportConfig,
};
pub use ends::{EndKinds, Ends, Sink, SinkError, Source, SourceError};
pub use envelope::{CorrelationId, Envelope, EnvelopeHeader, Route, TraceContext};
pub use node::{Context, Emit, Incident, LineMessage, Message, Node, NodeError, NodeInfo, NodeReport, Transform};
pub use registry::{NodeKind, Pipeline, Registry, Stage};
pub use wire::{WireError, WireMessage};
