//! The memory profile: every node in one process, on one thread.
//!
//! The executor pulls a batch from the source and pushes it through the nodes one node at a
//! time (node 1 sees the whole batch, then node 2, ...), then hands it to the sink. Because
//! each node owns its state and sees its inputs in source order, this gives exactly the output
//! of pushing events one by one, with one virtual call per node per batch instead of per
//! event, and no allocation once the batch buffers have grown.

use hopline_model::{CorrelationId, Envelope, LineMessage, Message, Pipeline};

use crate::adapters::{NdjsonSink, NdjsonSource, Sink, Source};
use crate::run::{Progress, RunError};

/// Envelope counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub records_in: u64,
    pub records_out: u64,
}

/// Runs `pipeline` from `source` to `sink` until the source is exhausted, then lets each node
/// finish in order. `progress` is called after every batch.
pub fn execute<M: Message>(
    pipeline: &mut Pipeline<M>,
    source: &mut dyn Source<M>,
    sink: &mut dyn Sink<M>,
    batch_size: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<Counts, RunError> {
    let stages = pipeline.stages.len();
    // buffers[i] feeds node i; buffers[stages] feeds the sink.
    let mut buffers: Vec<Vec<Envelope<M>>> = (0..=stages).map(|_| Vec::with_capacity(batch_size)).collect();
    let mut counts = Counts::default();
    let mut more = true;
    while more {
        more = source.next_batch(&mut buffers[0], batch_size).map_err(RunError::Source)?;
        counts.records_in += buffers[0].len() as u64;
        push_through(pipeline, &mut buffers, 0)?;
        counts.records_out += buffers[stages].len() as u64;
        sink.write_batch(&mut buffers[stages]).map_err(RunError::Sink)?;
        // Transform nodes hand the batch's allocation along from buffer to buffer; give it
        // back to the source, so every batch reuses the one allocation that is in cache.
        buffers.swap(0, stages);
        let (bytes_read, bytes_total) = source.position();
        progress(Progress { records_in: counts.records_in, records_out: counts.records_out, bytes_read, bytes_total });
    }
    for i in 0..stages {
        let stage = &mut pipeline.stages[i];
        stage.node.finish(&stage.info, &mut buffers[i + 1]).map_err(|error| RunError::Node {
            node: stage.info.name.clone(),
            seq: None,
            error,
        })?;
        push_through(pipeline, &mut buffers, i + 1)?;
        counts.records_out += buffers[stages].len() as u64;
        sink.write_batch(&mut buffers[stages]).map_err(RunError::Sink)?;
    }
    sink.flush().map_err(RunError::Sink)?;
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
        execute(pipeline, &mut source, &mut sink, batch_size, &mut |_| {})?
    };
    Ok((output, counts))
}

/// Runs the envelopes in `buffers[first]` through nodes `first..`, leaving the result in the
/// last buffer.
fn push_through<M: Message>(
    pipeline: &mut Pipeline<M>,
    buffers: &mut [Vec<Envelope<M>>],
    first: usize,
) -> Result<(), RunError> {
    for i in first..pipeline.stages.len() {
        let (input, output) = buffers.split_at_mut(i + 1);
        let stage = &mut pipeline.stages[i];
        stage
            .node
            .process_batch(&stage.info, &mut input[i], &mut output[0])
            .map_err(|(seq, error)| RunError::Node { node: stage.info.name.clone(), seq: Some(seq), error })?;
    }
    Ok(())
}
