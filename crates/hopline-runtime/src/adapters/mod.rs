//! Sources and sinks: where envelopes come from and where records go.
//!
//! The traits are the model's ([`hopline_model::ends`]), so that apps can provide their own
//! ends; the runtime's own is NDJSON ([`LineEnds`]). Every source and sink is bounded: a source
//! never yields more than the batch size at a time, and the NDJSON source holds its current
//! read chunk (sized for the longest line) plus a few earlier chunks kept for reuse.

mod ndjson;

pub use hopline_model::ends::{Ends, Sink, SinkError, Source, SourceError};
pub use ndjson::{LineEnds, MAX_LINE_BYTES, NdjsonSink, NdjsonSource};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hopline_model::{Envelope, Message};

/// A source that reports exhaustion once a stop is requested (the drain of a graceful stop:
/// the batch in flight goes on to the sink, no more is read), and counts what it hands over
/// as soon as it does, if asked (a batch that then fails still counts). Workers and the memory
/// profile both drain through it.
pub(crate) struct Stoppable<'a, M> {
    pub inner: &'a mut dyn Source<M>,
    pub stop: &'a AtomicBool,
    pub records_in: Option<&'a AtomicU64>,
}

impl<M: Message> Source<M> for Stoppable<'_, M> {
    fn next_batch(&mut self, out: &mut Vec<Envelope<M>>, max: usize) -> Result<bool, SourceError> {
        if self.stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let before = out.len();
        let more = self.inner.next_batch(out, max)?;
        if let Some(records_in) = self.records_in {
            records_in.fetch_add((out.len() - before) as u64, Ordering::Relaxed);
        }
        Ok(more)
    }

    fn position(&self) -> (u64, Option<u64>) {
        self.inner.position()
    }

    fn idle(&mut self) -> bool {
        self.inner.idle()
    }

    fn stops_promptly(&self) -> bool {
        self.inner.stops_promptly()
    }
}
