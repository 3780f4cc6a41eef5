//! The memory profile: every node in one process, on one thread.
//!
//! The executor pulls a batch from the source and pushes it through the nodes one node at a
//! time (node 1 sees the whole batch, then node 2, ...), then hands it to the sink. Because
//! each node owns its state and sees its inputs in source order, this gives exactly the output
//! of pushing events one by one, with one virtual call per node per batch instead of per
//! event, and no allocation once the batch buffers have grown.

use std::cell::Cell;

use hopline_model::{CorrelationId, Envelope, LineMessage, Message, Pipeline};

use crate::adapters::{NdjsonSink, NdjsonSource, Sink, Source};
use crate::run::{Progress, RunError};
use crate::tracing::Tracer;

/// What the executor is doing on this thread. Read after a panic, to say where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Asking the source for a batch.
    Source,
    /// Node `stage` on the events `seqs` (first and last), or finishing (`None`).
    Node { stage: usize, seqs: Option<(u64, u64)> },
    /// Handing a batch to the sink, or flushing it.
    Sink,
}

thread_local! {
    static CURRENT_WORK: Cell<Option<Work>> = const { Cell::new(None) };
}

/// The work the executor was doing on this thread when it last stopped without finishing it
/// (after a panic, the panicking node and its batch).
pub fn current_work() -> Option<Work> {
    CURRENT_WORK.get()
}

/// Envelope counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub records_in: u64,
    pub records_out: u64,
}

/// Runs `pipeline` from `source` to `sink` until the source is exhausted, then lets each node
/// finish in order. `progress` is called after every batch.
///
/// With a `tracer`, events are sampled as the source yields them and each batch's spans are
/// shipped once it has left (the caller finishes the tracer, also after an error).
pub fn execute<M: Message>(
    pipeline: &mut Pipeline<M>,
    source: &mut dyn Source<M>,
    sink: &mut dyn Sink<M>,
    batch_size: usize,
    progress: &mut dyn FnMut(Progress),
    mut tracer: Option<&mut Tracer>,
) -> Result<Counts, RunError> {
    let stages = pipeline.stages.len();
    // buffers[i] feeds node i; buffers[stages] feeds the sink.
    let mut buffers: Vec<Vec<Envelope<M>>> = (0..=stages).map(|_| Vec::with_capacity(batch_size)).collect();
    let mut counts = Counts::default();
    let mut more = true;
    while more {
        CURRENT_WORK.set(Some(Work::Source));
        more = source.next_batch(&mut buffers[0], batch_size).map_err(RunError::Source)?;
        counts.records_in += buffers[0].len() as u64;
        if let Some(tracer) = tracer.as_deref_mut() {
            tracer.open_roots(&mut buffers[0]);
        }
        push_through(pipeline, &mut buffers, 0)?;
        counts.records_out += buffers[stages].len() as u64;
        CURRENT_WORK.set(Some(Work::Sink));
        sink.write_batch(&mut buffers[stages]).map_err(RunError::Sink)?;
        if let Some(tracer) = tracer.as_deref_mut() {
            tracer.end_batch();
        }
        CURRENT_WORK.set(Some(Work::Source));
        if more && sink.holds_unflushed() && source.idle() {
            CURRENT_WORK.set(Some(Work::Sink));
            sink.flush().map_err(RunError::Sink)?;
        }
        // Transform nodes hand the batch's allocation along from buffer to buffer; give it
        // back to the source, so every batch reuses the one allocation that is in cache.
        buffers.swap(0, stages);
        let (bytes_read, bytes_total) = source.position();
        progress(Progress { records_in: counts.records_in, records_out: counts.records_out, bytes_read, bytes_total });
    }
    for i in 0..stages {
        CURRENT_WORK.set(Some(Work::Node { stage: i, seqs: None }));
        let stage = &mut pipeline.stages[i];
        stage.node.finish(&stage.info, &mut buffers[i + 1]).map_err(|error| RunError::Node {
            node: stage.info.name.clone(),
            seq: None,
            error,
        })?;
        push_through(pipeline, &mut buffers, i + 1)?;
        counts.records_out += buffers[stages].len() as u64;
        CURRENT_WORK.set(Some(Work::Sink));
        sink.write_batch(&mut buffers[stages]).map_err(RunError::Sink)?;
        if let Some(tracer) = tracer.as_deref_mut() {
            tracer.end_batch();
        }
    }
    CURRENT_WORK.set(Some(Work::Sink));
    sink.flush().map_err(RunError::Sink)?;
    CURRENT_WORK.set(None);
    Ok(counts)
}

/// Runs `pipeline` over `input` held in memory, as NDJSON lines, and returns the output
/// bytes: the whole memory profile without files, for tests and benchmarks.
pub fn run_bytes<M: LineMessage>(
    pipeline: &mut Pipeline<M>,
    input: &[u8],
    batch_size: usize,
) -> Result<(Vec<u8>, Counts), RunError> {
    let mut source = NdjsonSource::from_reader(input, "input", Some(input.len() as u64), CorrelationId::default());
    let mut output = Vec::with_capacity(input.len() / 2);
    let counts = {
        let mut sink = NdjsonSink::from_writer(&mut output, "output");
        execute(pipeline, &mut source, &mut sink, batch_size, &mut |_| {}, None)?
    };
    Ok((output, counts))
}

/// Runs the envelopes in `buffers[first]` through nodes `first..`, leaving the result in the
/// last buffer. Each node shows its output to the next node's `prepare` as it produces it.
fn push_through<M: Message>(
    pipeline: &mut Pipeline<M>,
    buffers: &mut [Vec<Envelope<M>>],
    first: usize,
) -> Result<(), RunError> {
    if let Some(stage) = pipeline.stages.get_mut(first) {
        stage.node.prepare(&buffers[first]);
    }
    for i in first..pipeline.stages.len() {
        let (input, output) = buffers.split_at_mut(i + 1);
        let (done, rest) = pipeline.stages.split_at_mut(i + 1);
        let stage = &mut done[i];
        if let (Some(first), Some(last)) = (input[i].first(), input[i].last()) {
            CURRENT_WORK.set(Some(Work::Node { stage: i, seqs: Some((first.header.seq, last.header.seq)) }));
        }
        let mut lookahead = |upcoming: &[Envelope<M>]| {
            if let Some(next) = rest.first_mut() {
                next.node.prepare(upcoming);
            }
        };
        stage
            .node
            .process_batch(&stage.info, &mut input[i], &mut output[0], &mut lookahead)
            .map_err(|(seq, error)| RunError::Node { node: stage.info.name.clone(), seq: Some(seq), error })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hopline_model::{Context, Emit, LineMessage, Node, NodeError, NodeKind, PipelineConfig, Registry, Transform};

    use super::*;

    /// Lines of words; `split` emits one message per word, `upper` rewrites in place.
    #[derive(Debug)]
    enum Msg {
        Line(Bytes),
        Word(String),
    }

    impl Message for Msg {
        fn kind(&self) -> &'static str {
            match self {
                Msg::Line(_) => "line",
                Msg::Word(_) => "record",
            }
        }
    }

    impl LineMessage for Msg {
        fn from_line(line: Bytes) -> Self {
            Msg::Line(line)
        }
        fn write_record(&self, out: &mut Vec<u8>) -> bool {
            match self {
                Msg::Word(w) => {
                    out.extend_from_slice(w.as_bytes());
                    true
                }
                Msg::Line(_) => false,
            }
        }
    }

    struct Split;
    impl Node<Msg> for Split {
        fn process(&mut self, ctx: &Context<'_>, m: Msg, out: &mut Emit<'_, Msg>) -> Result<(), NodeError> {
            let Msg::Line(line) = m else { return Err(NodeError::UnexpectedMessage { got: m.kind() }) };
            let text = String::from_utf8_lossy(&line);
            if text == "boom" {
                return Err(NodeError::Failed(format!("cannot split line {}", ctx.seq())));
            }
            text.split_whitespace().for_each(|w| out.emit(Msg::Word(format!("{}:{w}", ctx.seq()))));
            Ok(())
        }
    }

    /// Upper-cases words, and checks that `prepare` saw every word before `transform` did.
    #[derive(Default)]
    struct Upper {
        prepared: std::collections::VecDeque<String>,
    }
    impl Transform<Msg> for Upper {
        fn prepare(&mut self, upcoming: &[Envelope<Msg>]) {
            for e in upcoming {
                if let Msg::Word(w) = &e.payload {
                    self.prepared.push_back(w.clone());
                }
            }
        }
        fn transform(&mut self, _: &Context<'_>, m: &mut Msg) -> Result<(), NodeError> {
            if let Msg::Word(w) = m {
                assert_eq!(self.prepared.pop_front().as_ref(), Some(&*w), "prepare runs ahead, in order");
                *w = w.to_uppercase();
            }
            Ok(())
        }
    }

    fn pipeline(batch: usize) -> (Pipeline<Msg>, usize) {
        let mut registry = Registry::new("words");
        registry.register(NodeKind {
            name: "split",
            summary: "",
            consumes: &["line"],
            emits: &["record"],
            requires: &[],
            build: |_| Ok(Box::new(Split)),
        });
        registry.register(NodeKind {
            name: "upper",
            summary: "",
            consumes: &["record"],
            emits: &["record"],
            requires: &[],
            build: |_| Ok(Box::new(Upper::default())),
        });
        let text = format!(
            "app: words\nscenario: t\nruntime: {{batch_size: {batch}}}\nsource: {{kind: ndjson, path: a}}\nsink: {{kind: ndjson, path: b}}\nnodes:\n  - kind: split\n  - kind: upper\n"
        );
        let config = PipelineConfig::from_yaml("words.yml", &text).unwrap();
        (registry.build(&config, &["line"], &["record"]).unwrap(), config.runtime.batch_size)
    }

    #[test]
    fn one_to_many_and_in_place_nodes_keep_input_order_in_any_batch_size() {
        let input = b"a b\n\nc\nd e f\n";
        for batch in [1, 2, 3, 1024] {
            let (mut pipeline, batch) = pipeline(batch);
            let (out, counts) = run_bytes(&mut pipeline, input, batch).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), "1:A\n1:B\n3:C\n4:D\n4:E\n4:F\n", "batch {batch}");
            assert_eq!(counts, Counts { records_in: 4, records_out: 6 });
        }
    }

    #[test]
    fn node_failure_names_the_node_and_the_event() {
        let (mut pipeline, batch) = pipeline(2);
        let err = run_bytes(&mut pipeline, b"a\nb\nboom\nc\n", batch).unwrap_err();
        assert_eq!(err.to_string(), "node `split` failed on event 3: cannot split line 3");
    }
}
