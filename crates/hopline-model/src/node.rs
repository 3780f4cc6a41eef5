//! Nodes: the steps of a pipeline.
//!
//! A node consumes one typed message at a time and emits zero or more typed messages. It may
//! keep state between messages; that state belongs to the node alone (no two nodes share
//! state), which is what lets the runtime place any node in any process group and still give
//! byte-identical output. Nodes never know the profile they run under.

use crate::config::Params;
use crate::envelope::{CorrelationId, Envelope, EnvelopeHeader};
use crate::trace;

/// The payload type of one application: usually an enum with one variant per message kind.
///
/// Kinds are short names (`line`, `attempt`, `decision`, ...) that node kinds declare they
/// consume and emit, so that a pipeline config is type-checked before any input is read.
pub trait Message: Send + Sized + 'static {
    /// The kind of this message, as node kinds name it in `consumes` and `emits`.
    fn kind(&self) -> &'static str;
}

/// A message type that line-oriented adapters (NDJSON source and sink) can carry.
///
/// A line source emits messages of kind [`LineMessage::LINE`]; a line sink accepts messages
/// of kind [`LineMessage::RECORD`] and writes each one's encoding followed by a newline.
/// Records stay typed until the sink encodes them, straight into its output buffer: bytes
/// are made at the process boundary, once.
pub trait LineMessage: Message {
    /// Kind of the messages a line source emits.
    const LINE: &'static str = "line";
    /// Kind of the messages a line sink writes.
    const RECORD: &'static str = "record";

    /// Wraps one input line (without its line terminator).
    fn from_line(line: bytes::Bytes) -> Self;

    /// Appends this record's line (without the newline) to `out`. Returns false, writing
    /// nothing, if the message is not a record.
    fn write_record(&self, out: &mut Vec<u8>) -> bool;
}

/// Static facts about one node instance in a pipeline.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Instance name, unique in the pipeline (defaults to the kind).
    pub name: String,
    /// Registered kind.
    pub kind: &'static str,
    /// Position in the pipeline's node list.
    pub index: usize,
    /// The node's params as written in the config.
    pub params: Params,
}

/// What a node sees beside the message: the envelope header and its own identity and params.
pub struct Context<'a> {
    header: &'a EnvelopeHeader,
    node: &'a NodeInfo,
}

impl<'a> Context<'a> {
    pub fn new(header: &'a EnvelopeHeader, node: &'a NodeInfo) -> Self {
        Context { header, node }
    }

    /// The envelope's sequence number (for line sources: the 1-based line number).
    pub fn seq(&self) -> u64 {
        self.header.seq
    }

    pub fn correlation_id(&self) -> CorrelationId {
        self.header.correlation_id
    }

    pub fn header(&self) -> &EnvelopeHeader {
        self.header
    }

    pub fn node(&self) -> &NodeInfo {
        self.node
    }

    /// The node's params as written in the config (nodes usually read them once, at build).
    pub fn params(&self) -> &Params {
        &self.node.params
    }

    /// Opens a span inside this node's span, ended when the guard is dropped: a step of the
    /// node worth seeing in a trace (`"lookup customer window"`). It is recorded only for a
    /// sampled event when the run traces at `debug` level; otherwise it costs a branch.
    #[inline]
    pub fn detail(&self, name: &'static str) -> crate::trace::Detail {
        if crate::trace::sampled(self.header).is_some() {
            crate::trace::Detail::open(name)
        } else {
            crate::trace::Detail::NONE
        }
    }

    /// Opens a span of the node's own under this node's span, at info level, with a name and
    /// attributes of its choosing ([`crate::trace::Span`]): an action taken on the event, a
    /// request made for it. `None` unless the event is sampled and the run traces.
    #[inline]
    pub fn span(&self, name: impl FnOnce() -> String) -> Option<crate::trace::Span> {
        let parent = crate::trace::sampled(self.header)?;
        let node = crate::trace::current_node().filter(|node| node.trace_id == parent.trace_id)?;
        crate::trace::Span::open(node, name(), self.header)
    }
}

/// Where a node puts what it emits. Every emitted message inherits the input's header.
pub struct Emit<'a, M> {
    out: &'a mut Vec<Envelope<M>>,
    header: EnvelopeHeader,
}

impl<'a, M> Emit<'a, M> {
    pub fn new(out: &'a mut Vec<Envelope<M>>, header: EnvelopeHeader) -> Self {
        Emit { out, header }
    }

    #[inline]
    pub fn emit(&mut self, message: M) {
        self.out.push(Envelope { header: self.header, payload: message });
    }
}

/// A node's failure on one message. The runtime adds the node and the sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The node received a kind of message it does not handle.
    #[error("received a `{got}` message, which it does not consume")]
    UnexpectedMessage { got: &'static str },
    /// Any other failure, described for a person.
    #[error("{0}")]
    Failed(String),
    /// The node panicked; the runtime caught it (multiprocess workers do) and says where.
    #[error("panicked: {message}")]
    Panicked { message: String },
}

/// A node: one step of a pipeline.
pub trait Node<M: Message>: Send {
    /// Handles one message, emitting zero or more messages through `out`.
    fn process(&mut self, ctx: &Context<'_>, message: M, out: &mut Emit<'_, M>) -> Result<(), NodeError>;

    /// Sees envelopes before they are processed: the place to prefetch the state they will
    /// touch. Executors call it on every envelope ahead of [`Node::process_batch`], while the
    /// node before this one is still busy with later envelopes, so that this node's memory
    /// misses overlap with that node's work. Must not change what the node decides.
    fn prepare(&mut self, _upcoming: &[Envelope<M>]) {}

    /// Handles a batch, in order, appending to `output`, and shows what it has produced so far
    /// to `lookahead` (the next node's [`Node::prepare`]) as it goes. The default calls
    /// [`Node::process`] for each envelope; it is monomorphised per node type, so the
    /// per-message call inlines.
    ///
    /// On error, returns the failing envelope's sequence number with the error.
    fn process_batch(
        &mut self,
        info: &NodeInfo,
        input: &mut Vec<Envelope<M>>,
        output: &mut Vec<Envelope<M>>,
        lookahead: &mut dyn FnMut(&[Envelope<M>]),
    ) -> Result<(), (u64, NodeError)> {
        let first = output.len();
        for Envelope { header, payload } in input.drain(..) {
            let ctx = Context::new(&header, info);
            let before = output.len();
            let mut emit = Emit::new(output, header);
            let traced = trace::sampled(&header).and_then(|parent| trace::node_started(parent, info.index, &header));
            let result = self.process(&ctx, payload, &mut emit);
            if let Some(span) = traced {
                trace::node_finished(span, outcome(&result, output.len() - before));
            }
            result.map_err(|e| (header.seq, e))?;
        }
        lookahead(&output[first..]);
        Ok(())
    }

    /// Called once at the end of the stream; a node holding messages back emits them here.
    fn finish(&mut self, _info: &NodeInfo, _output: &mut Vec<Envelope<M>>) -> Result<(), NodeError> {
        Ok(())
    }

    /// What the node has to say in the run summary. Called once, after `finish`.
    fn report(&self) -> NodeReport {
        NodeReport::default()
    }
}

/// Envelopes a [`Transform`] node hands to the next node's `prepare` at a time: small enough
/// that the next node's prefetches start early, large enough to keep many in flight.
pub const LOOKAHEAD_CHUNK: usize = 32;

/// A node that turns every message into exactly one message, in place.
///
/// Most steps are like this (parse, enrich, decide, format). Implementing `Transform`
/// instead of [`Node`] lets the runtime run a whole batch without moving a single envelope:
/// each payload is rewritten where it lies and the batch buffer is handed on as is.
pub trait Transform<M: Message>: Send {
    /// Rewrites one message in place.
    fn transform(&mut self, ctx: &Context<'_>, message: &mut M) -> Result<(), NodeError>;

    /// Sees envelopes before they are transformed, while the node before is still working:
    /// the place to prefetch state (see [`Node::prepare`]). Must not change what `transform`
    /// decides.
    fn prepare(&mut self, _upcoming: &[Envelope<M>]) {}

    /// What the node has to say in the run summary. Called once, at the end.
    fn report(&self) -> NodeReport {
        NodeReport::default()
    }
}

impl<M: Message, T: Transform<M>> Node<M> for T {
    fn process(&mut self, ctx: &Context<'_>, mut message: M, out: &mut Emit<'_, M>) -> Result<(), NodeError> {
        self.transform(ctx, &mut message)?;
        out.emit(message);
        Ok(())
    }

    fn prepare(&mut self, upcoming: &[Envelope<M>]) {
        Transform::prepare(self, upcoming)
    }

    fn process_batch(
        &mut self,
        info: &NodeInfo,
        input: &mut Vec<Envelope<M>>,
        output: &mut Vec<Envelope<M>>,
        lookahead: &mut dyn FnMut(&[Envelope<M>]),
    ) -> Result<(), (u64, NodeError)> {
        for chunk in input.chunks_mut(LOOKAHEAD_CHUNK) {
            for envelope in chunk.iter_mut() {
                let ctx = Context::new(&envelope.header, info);
                match trace::sampled(&envelope.header) {
                    None => self.transform(&ctx, &mut envelope.payload).map_err(|e| (envelope.header.seq, e))?,
                    Some(parent) => {
                        let traced = trace::node_started(parent, info.index, &envelope.header);
                        let result = self.transform(&ctx, &mut envelope.payload);
                        if let Some(span) = traced {
                            trace::node_finished(span, outcome(&result, 1));
                        }
                        result.map_err(|e| (envelope.header.seq, e))?;
                    }
                }
            }
            lookahead(chunk);
        }
        if output.is_empty() {
            std::mem::swap(input, output);
        } else {
            output.append(input);
        }
        Ok(())
    }

    fn report(&self) -> NodeReport {
        Transform::report(self)
    }
}

/// A node span's outcome: what the node emitted, or why it failed.
fn outcome(result: &Result<(), NodeError>, emitted: usize) -> trace::Outcome {
    match result {
        Ok(()) => trace::Outcome::Emitted(emitted.min(u32::MAX as usize) as u32),
        Err(error) => trace::Outcome::failed(error.to_string()),
    }
}

/// A node's contribution to the run summary: named counts and incidents.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeReport {
    /// Named counts, in the order the node wants them shown (`accepted`, `declined`, ...).
    pub counts: Vec<(String, u64)>,
    /// Things that went wrong with individual events, grouped by kind and reason.
    pub incidents: Vec<Incident>,
}

/// Events that met the same problem, e.g. malformed lines with a bad amount.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    /// The family of problem, e.g. `malformed`.
    pub kind: String,
    /// The specific reason, e.g. `bad load_amount`.
    pub reason: String,
    pub count: u64,
    /// Sequence numbers of the first few events that met it, in order.
    pub first_seqs: Vec<u64>,
}

/// How many sequence numbers an [`Incident`] keeps.
pub const INCIDENT_SAMPLE: usize = 5;

impl Incident {
    pub fn new(kind: impl Into<String>, reason: impl Into<String>) -> Self {
        Incident { kind: kind.into(), reason: reason.into(), count: 0, first_seqs: Vec::new() }
    }

    /// Counts one more event, keeping its sequence number while fewer than
    /// [`INCIDENT_SAMPLE`] are kept.
    pub fn record(&mut self, seq: u64) {
        self.count += 1;
        if self.first_seqs.len() < INCIDENT_SAMPLE {
            self.first_seqs.push(seq);
        }
    }
}
