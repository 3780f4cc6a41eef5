//! Span records: what the pipeline thread notes about a sampled event, cheaply, for the
//! runtime's tracer to export later.
//!
//! Tracing is decided per event, once, at the source: a sampled event carries a
//! [`TraceContext`] with the sampled flag in its header, and every step that sees it notes a
//! [`SpanRecord`] (ids, times, what happened) into this thread's buffer. Nothing here talks to
//! an exporter: the runtime takes the records after each batch ([`take_records`]) and turns
//! them into OpenTelemetry spans on another thread. An event that is not sampled carries no
//! context, and costs one branch per step; with the `tracing` feature off, not even that.
//!
//! Recording is switched on per thread ([`set_level`]): a thread that has not asked for spans
//! notes none, whatever the headers say.

use std::cell::{Cell, RefCell};
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::envelope::{CorrelationId, EnvelopeHeader, TraceContext};

/// Which spans a thread records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    /// None: the thread does not trace.
    #[default]
    Off,
    /// Event roots, node and hop spans.
    Info,
    /// Those, and the spans nodes open inside themselves ([`crate::Context::detail`]).
    Debug,
}

/// What a span covers. Names are resolved when the span is exported: records hold indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A whole run (the supervisor's, or the memory profile's process).
    Run,
    /// A job, as a service handling it sees it (the coordinator from submit to its end, an
    /// agent while it runs the job).
    Job,
    /// An event's root span, at the source.
    Source,
    /// Node `index` (its position in the pipeline's node list) processing the event.
    Node { index: u16 },
    /// The event leaving this process group for group `to` (a PRODUCER span).
    Send { to: u16 },
    /// The event arriving from group `from` (a CONSUMER span).
    Receive { from: u16 },
    /// A node's own span inside its node span (debug level).
    Detail { name: &'static str },
    /// A span a node records itself, at info level, with its own name, kind and attributes
    /// ([`SpanRecord::custom`]; see [`Span`]): an action, an HTTP request it makes.
    Custom,
}

/// An attribute value of a [`Span`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_string())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}

impl From<i64> for AttrValue {
    fn from(n: i64) -> Self {
        AttrValue::Int(n)
    }
}

/// What a [`SpanKind::Custom`] span says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomSpan {
    pub name: String,
    /// An outgoing request (an OpenTelemetry CLIENT span) rather than internal work.
    pub client: bool,
    pub attributes: Vec<(&'static str, AttrValue)>,
}

/// What a node did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a node span, or nothing to say.
    None,
    /// The node emitted this many messages (0: it dropped the event).
    Emitted(u32),
    /// The node failed on the event, for this reason.
    Failed(String),
}

impl Outcome {
    /// The longest failure message a span keeps, in bytes; longer ones are cut (at a
    /// character boundary) and marked.
    pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

    /// A failure, its message cut to [`Outcome::MAX_MESSAGE_BYTES`].
    pub fn failed(mut message: String) -> Outcome {
        if message.len() > Self::MAX_MESSAGE_BYTES {
            let mut cut = Self::MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [cut]");
        }
        Outcome::Failed(message)
    }
}

/// One span, as the pipeline thread notes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zero for a root span.
    pub parent_span_id: [u8; 8],
    pub kind: SpanKind,
    /// Wall-clock nanoseconds since the Unix epoch, so spans of several processes line up.
    pub start_ns: u64,
    pub end_ns: u64,
    pub seq: u64,
    pub correlation_id: CorrelationId,
    /// Hops the event has crossed, this one included for hop spans.
    pub route_hop: u16,
    /// The process group that handed the event over, for node spans of an event that crossed
    /// a hop (receive spans name it in their kind).
    pub handoff_from: Option<u16>,
    pub outcome: Outcome,
    /// The name, kind and attributes of a [`SpanKind::Custom`] span; `None` for the others.
    pub custom: Option<Box<CustomSpan>>,
}

thread_local! {
    static LEVEL: Cell<Level> = const { Cell::new(Level::Off) };
    static RECORDS: RefCell<Vec<SpanRecord>> = const { RefCell::new(Vec::new()) };
    /// The node span a detail span belongs to: (trace id, span id, seq, correlation id).
    static CURRENT_NODE: Cell<Option<(TraceContext, u64, CorrelationId)>> = const { Cell::new(None) };
    static RNG: Cell<u64> = Cell::new(seed());
}

/// Whether this build records spans at all (the `tracing` feature).
pub const COMPILED_IN: bool = cfg!(feature = "tracing");

/// Switches span recording on (or off) for this thread.
pub fn set_level(level: Level) {
    LEVEL.set(if COMPILED_IN { level } else { Level::Off });
}

/// This thread's recording level.
#[inline]
pub fn level() -> Level {
    LEVEL.get()
}

/// Takes the records noted on this thread so far, appending them to `out`.
pub fn take_records(out: &mut Vec<SpanRecord>) {
    RECORDS.with_borrow_mut(|records| out.append(records));
}

/// Notes one span on this thread (if it records at all).
pub fn record(span: SpanRecord) {
    if level() != Level::Off {
        RECORDS.with_borrow_mut(|records| records.push(span));
    }
}

/// Wall-clock time now, in nanoseconds since the Unix epoch.
#[inline]
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The header's trace context if the event is sampled (and this build traces).
#[inline(always)]
pub fn sampled(header: &EnvelopeHeader) -> Option<TraceContext> {
    if COMPILED_IN { header.trace.filter(TraceContext::sampled) } else { None }
}

/// A fresh, non-zero span id.
pub fn new_span_id() -> [u8; 8] {
    next_random().max(1).to_be_bytes()
}

/// A fresh, non-zero trace id.
pub fn new_trace_id() -> [u8; 16] {
    let high = next_random();
    let low = next_random().max(1);
    ((u128::from(high) << 64) | u128::from(low)).to_be_bytes()
}

/// wyrand: fast, and plenty for ids that must be unique, not secret.
fn next_random() -> u64 {
    RNG.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// A per-thread seed: the standard library's random hash keys, the time and the thread.
fn seed() -> u64 {
    let keys = RandomState::new();
    keys.hash_one((now_ns(), std::thread::current().id(), std::process::id()))
}

/// A node span being timed: started by [`node_started`], noted by [`node_finished`].
#[derive(Debug)]
pub struct NodeSpan {
    parent: TraceContext,
    span_id: [u8; 8],
    index: u16,
    seq: u64,
    correlation_id: CorrelationId,
    route_hop: u16,
    handoff_from: Option<u16>,
    start_ns: u64,
    /// Noted by [`node_finished`]; a span dropped without it (the node panicked) is noted as
    /// failed.
    done: bool,
}

impl NodeSpan {
    fn note(&mut self, outcome: Outcome) {
        self.done = true;
        CURRENT_NODE.set(None);
        record(SpanRecord {
            trace_id: self.parent.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent.span_id,
            kind: SpanKind::Node { index: self.index },
            start_ns: self.start_ns,
            end_ns: now_ns(),
            seq: self.seq,
            correlation_id: self.correlation_id,
            route_hop: self.route_hop,
            handoff_from: self.handoff_from,
            outcome,
            custom: None,
        });
    }

    /// The node span's own context: the parent of the spans a node records inside it.
    pub fn context(&self) -> TraceContext {
        TraceContext { span_id: self.span_id, ..self.parent }
    }
}

impl Drop for NodeSpan {
    fn drop(&mut self) {
        if !self.done {
            self.note(Outcome::Failed("panicked".into()));
        }
    }
}

/// Starts timing node `index` on a sampled event. Returns `None` when this thread does not
/// record spans. While the node runs, [`crate::Context::detail`] and [`crate::Context::span`]
/// spans are its children.
#[cold]
pub fn node_started(parent: TraceContext, index: usize, header: &EnvelopeHeader) -> Option<NodeSpan> {
    let level = level();
    if level == Level::Off {
        return None;
    }
    let span = NodeSpan {
        parent,
        span_id: new_span_id(),
        index: index.min(usize::from(u16::MAX)) as u16,
        seq: header.seq,
        correlation_id: header.correlation_id,
        route_hop: header.route.route_hop,
        handoff_from: header.route.handoff_from,
        start_ns: now_ns(),
        done: false,
    };
    let current = TraceContext { span_id: span.span_id, ..parent };
    CURRENT_NODE.set(Some((current, header.seq, header.correlation_id)));
    Some(span)
}

/// Notes a node span started by [`node_started`].
#[cold]
pub fn node_finished(mut span: NodeSpan, outcome: Outcome) {
    span.note(outcome);
}

/// A node's own span inside its node span, noted when dropped. See [`crate::Context::detail`].
#[must_use = "the span ends when this guard is dropped"]
#[derive(Debug)]
pub struct Detail {
    open: Option<(TraceContext, u64, CorrelationId, &'static str, u64)>,
}

impl Detail {
    /// A guard that records nothing.
    pub(crate) const NONE: Detail = Detail { open: None };

    /// Opens a detail span under the node span running on this thread, if there is one (a
    /// sampled event, at debug level).
    #[cold]
    pub(crate) fn open(name: &'static str) -> Detail {
        match CURRENT_NODE.get() {
            Some((node, seq, correlation_id)) if level() == Level::Debug => {
                Detail { open: Some((node, seq, correlation_id, name, now_ns())) }
            }
            _ => Detail::NONE,
        }
    }
}

impl Drop for Detail {
    #[inline]
    fn drop(&mut self) {
        if self.open.is_some() {
            self.close();
        }
    }
}

impl Detail {
    #[cold]
    #[inline(never)]
    fn close(&mut self) {
        if let Some((node, seq, correlation_id, name, start_ns)) = self.open.take() {
            record(SpanRecord {
                trace_id: node.trace_id,
                span_id: new_span_id(),
                parent_span_id: node.span_id,
                kind: SpanKind::Detail { name },
                start_ns,
                end_ns: now_ns(),
                seq,
                correlation_id,
                route_hop: 0,
                handoff_from: None,
                outcome: Outcome::None,
                custom: None,
            });
        }
    }
}

/// The node span running on this thread, if any (a sampled event's).
pub fn current_node() -> Option<TraceContext> {
    CURRENT_NODE.get().map(|(context, _, _)| context)
}

/// A span a node records itself, with its own name and attributes, at info level: an action it
/// takes on an event, an HTTP request it makes. Its [`Span::context`] is what a request
/// carries as `traceparent`, so the receiver's spans join the event's trace. Noted when ended
/// or dropped (a span dropped without [`Span::end`] is noted as it is).
#[derive(Debug)]
pub struct Span {
    context: TraceContext,
    parent_span_id: [u8; 8],
    seq: u64,
    correlation_id: CorrelationId,
    start_ns: u64,
    custom: Option<Box<CustomSpan>>,
    failure: Option<String>,
}

impl Span {
    /// Opens a span under `parent` (an event's node span, or another [`Span`]) for the event
    /// `header` describes, if this thread records spans; `None` otherwise.
    pub fn open(parent: TraceContext, name: impl Into<String>, header: &EnvelopeHeader) -> Option<Span> {
        if level() == Level::Off || !parent.sampled() {
            return None;
        }
        Some(Span {
            context: TraceContext { span_id: new_span_id(), ..parent },
            parent_span_id: parent.span_id,
            seq: header.seq,
            correlation_id: header.correlation_id,
            start_ns: now_ns(),
            custom: Some(Box::new(CustomSpan { name: name.into(), client: false, attributes: Vec::new() })),
            failure: None,
        })
    }

    /// Marks it as an outgoing request (a CLIENT span).
    pub fn client(mut self) -> Span {
        if let Some(custom) = &mut self.custom {
            custom.client = true;
        }
        self
    }

    /// Its context: the parent of spans under it, and what a request it makes carries.
    pub fn context(&self) -> TraceContext {
        self.context
    }

    /// Sets an attribute (a later value for the same key replaces the earlier one).
    pub fn set(&mut self, key: &'static str, value: impl Into<AttrValue>) {
        if let Some(custom) = &mut self.custom {
            let value = value.into();
            match custom.attributes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => custom.attributes.push((key, value)),
            }
        }
    }

    /// Marks it failed, with the reason (cut to [`Outcome::MAX_MESSAGE_BYTES`]).
    pub fn fail(&mut self, message: impl Into<String>) {
        self.failure = Some(message.into());
    }

    /// Ends it now.
    pub fn end(self) {}
}

impl Drop for Span {
    fn drop(&mut self) {
        record(SpanRecord {
            trace_id: self.context.trace_id,
            span_id: self.context.span_id,
            parent_span_id: self.parent_span_id,
            kind: SpanKind::Custom,
            start_ns: self.start_ns,
            end_ns: now_ns(),
            seq: self.seq,
            correlation_id: self.correlation_id,
            route_hop: 0,
            handoff_from: None,
            outcome: self.failure.take().map_or(Outcome::None, Outcome::failed),
            custom: self.custom.take(),
        });
    }
}

#[cfg(all(test, feature = "tracing"))]
mod tests {
    use super::*;

    fn sampled_header() -> EnvelopeHeader {
        EnvelopeHeader {
            seq: 7,
            trace: Some(TraceContext { trace_id: new_trace_id(), span_id: new_span_id(), flags: 1 }),
            ..Default::default()
        }
    }

    #[test]
    fn a_thread_that_does_not_record_notes_nothing() {
        set_level(Level::Off);
        let header = sampled_header();
        assert!(node_started(header.trace.unwrap(), 0, &header).is_none());
        let mut out = Vec::new();
        take_records(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn node_spans_are_children_of_the_header_span_and_details_of_the_node_span() {
        set_level(Level::Debug);
        let header = sampled_header();
        let parent = header.trace.unwrap();
        let span = node_started(parent, 3, &header).unwrap();
        drop(Detail::open("lookup"));
        node_finished(span, Outcome::Emitted(1));
        set_level(Level::Off);
        let mut out = Vec::new();
        take_records(&mut out);
        let [detail, node] = &out[..] else { panic!("two spans: {out:?}") };
        assert_eq!(node.parent_span_id, parent.span_id);
        assert_eq!(node.kind, SpanKind::Node { index: 3 });
        assert_eq!((node.seq, node.trace_id), (7, parent.trace_id));
        assert_eq!(detail.parent_span_id, node.span_id);
        assert_eq!(detail.kind, SpanKind::Detail { name: "lookup" });
        assert!(node.start_ns <= detail.start_ns && detail.end_ns <= node.end_ns);
    }

    #[test]
    fn details_are_info_level_silent_and_outside_nodes_silent() {
        set_level(Level::Info);
        let header = sampled_header();
        let span = node_started(header.trace.unwrap(), 0, &header).unwrap();
        drop(Detail::open("lookup"));
        node_finished(span, Outcome::Emitted(1));
        set_level(Level::Debug);
        drop(Detail::open("outside any node"));
        set_level(Level::Off);
        let mut out = Vec::new();
        take_records(&mut out);
        assert_eq!(out.len(), 1, "only the node span: {out:?}");
    }

    #[test]
    fn ids_are_never_zero_and_do_not_repeat() {
        let ids: std::collections::HashSet<[u8; 8]> = (0..10_000).map(|_| new_span_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(!ids.contains(&[0; 8]));
        assert_ne!(new_trace_id(), [0; 16]);
    }

    #[test]
    fn a_node_that_panics_leaves_a_failed_span_and_no_open_detail_parent() {
        set_level(Level::Debug);
        let header = sampled_header();
        let result = std::panic::catch_unwind(|| {
            let _span = node_started(header.trace.unwrap(), 1, &header).unwrap();
            panic!("boom");
        });
        assert!(result.is_err());
        drop(Detail::open("after the panic"));
        set_level(Level::Off);
        let mut out = Vec::new();
        take_records(&mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].outcome, Outcome::Failed("panicked".into()));
    }

    #[test]
    fn a_long_failure_message_is_cut_at_a_character_boundary() {
        let Outcome::Failed(message) = Outcome::failed("é".repeat(20_000)) else { panic!() };
        assert!(message.len() <= Outcome::MAX_MESSAGE_BYTES + " [cut]".len());
        assert!(message.ends_with(" [cut]"));
        assert_eq!(Outcome::failed("short".into()), Outcome::Failed("short".into()));
    }

    /// A message for the batch tests: a number that `Double` doubles and `Split` splits.
    struct Num(u64);

    impl crate::Message for Num {
        fn kind(&self) -> &'static str {
            "num"
        }
    }

    struct Double;

    impl crate::Transform<Num> for Double {
        fn transform(&mut self, ctx: &crate::Context<'_>, m: &mut Num) -> Result<(), crate::NodeError> {
            let _detail = ctx.detail("doubling");
            m.0 *= 2;
            Ok(())
        }
    }

    struct Split;

    impl crate::Node<Num> for Split {
        fn process(
            &mut self,
            _: &crate::Context<'_>,
            m: Num,
            out: &mut crate::Emit<'_, Num>,
        ) -> Result<(), crate::NodeError> {
            (0..m.0).for_each(|i| out.emit(Num(i)));
            Ok(())
        }
    }

    fn batch(sampled: &[bool]) -> Vec<crate::Envelope<Num>> {
        sampled
            .iter()
            .enumerate()
            .map(|(i, &sampled)| {
                let header = if sampled { sampled_header() } else { EnvelopeHeader::default() };
                crate::Envelope::new(EnvelopeHeader { seq: i as u64 + 1, ..header }, Num(2))
            })
            .collect()
    }

    fn info(index: usize) -> crate::NodeInfo {
        crate::NodeInfo { name: "n".into(), kind: "n", index, params: crate::config::Params::empty() }
    }

    #[test]
    fn batches_note_spans_for_sampled_events_only_and_nothing_when_none_is() {
        use crate::Node as _;
        set_level(Level::Debug);
        let mut out = Vec::new();
        for node in [&mut Double as &mut dyn crate::Node<Num>, &mut Split] {
            let mut input = batch(&[false, false, false]);
            node.process_batch(&info(0), &mut input, &mut Vec::new(), &mut |_| {}).unwrap();
        }
        take_records(&mut out);
        assert!(out.is_empty(), "unsampled events make no span: {out:?}");

        let mut input = batch(&[false, true, false]);
        let mut doubled = Vec::new();
        Double.process_batch(&info(4), &mut input, &mut doubled, &mut |_| {}).unwrap();
        let mut split = Vec::new();
        Split.process_batch(&info(5), &mut doubled, &mut split, &mut |_| {}).unwrap();
        set_level(Level::Off);
        take_records(&mut out);
        let kinds: Vec<(SpanKind, u64)> = out.iter().map(|r| (r.kind, r.seq)).collect();
        assert_eq!(
            kinds,
            [
                (SpanKind::Detail { name: "doubling" }, 2),
                (SpanKind::Node { index: 4 }, 2),
                (SpanKind::Node { index: 5 }, 2)
            ]
        );
        assert_eq!(out[1].outcome, Outcome::Emitted(1));
        assert_eq!(out[2].outcome, Outcome::Emitted(4), "the one-to-many node emitted four");
        assert_eq!(split.len(), 12);
    }
}
