//! probe's nodes, one file each: its params, its behaviour and its tests.

pub mod delay;
pub mod fault;
pub mod pass;

use hopline_model::NodeError;
use serde::Deserialize;

use crate::message::ProbeMsg;

/// The error a node returns for a message kind the registry should have kept from it.
pub(crate) fn unexpected(message: &ProbeMsg) -> NodeError {
    use hopline_model::Message;
    NodeError::UnexpectedMessage { got: message.kind() }
}

/// Reads a whole number that must be at least 1 (an event number, a count).
pub(crate) fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("expected a whole number from 1, found 0"));
    }
    Ok(n)
}

/// A small stand-in for the memory executor, so node tests need only the model: builds a
/// pipeline from a config's `nodes:` and pushes numbered lines through it batch by batch.
#[cfg(test)]
pub(crate) mod testing {
    use bytes::Bytes;
    use hopline_model::{ConfigError, Envelope, EnvelopeHeader, NodeError, Pipeline, PipelineConfig};

    use crate::message::ProbeMsg;

    /// The config's `nodes:` entries start on this line.
    pub const FIRST_NODE_LINE: usize = 6;

    /// Builds the pipeline of a probe config whose `nodes:` list is `nodes`, between an
    /// NDJSON source and sink.
    pub fn pipeline(nodes: &str) -> Result<Pipeline<ProbeMsg>, ConfigError> {
        let text = format!(
            "app: probe\nscenario: test\nsource: {{kind: ndjson, path: in}}\nsink: {{kind: ndjson, path: out}}\nnodes:\n{nodes}"
        );
        let config = PipelineConfig::from_yaml("probe.yml", &text)?;
        crate::registry().build(&config, &["line"], &["record"])
    }

    /// The build error of a config, which must not build.
    pub fn build_error(nodes: &str) -> ConfigError {
        match pipeline(nodes) {
            Ok(_) => panic!("the config built:\n{nodes}"),
            Err(e) => e,
        }
    }

    /// Lines `1..=n` as the source gives them: seq `i`, bytes `{"n":i}`.
    pub fn lines(n: u64) -> Vec<Envelope<ProbeMsg>> {
        (1..=n).map(|seq| envelope(seq, ProbeMsg::Line(Bytes::from(format!("{{\"n\":{seq}}}"))))).collect()
    }

    pub fn envelope(seq: u64, payload: ProbeMsg) -> Envelope<ProbeMsg> {
        Envelope::new(EnvelopeHeader { seq, ..EnvelopeHeader::default() }, payload)
    }

    /// A node's failure: its name, the event's seq and the error.
    pub type Failure = (String, u64, NodeError);

    /// Pushes `input` through every stage, `batch_size` envelopes at a time, then finishes
    /// the stages; returns what the last stage emitted.
    pub fn run(
        pipeline: &mut Pipeline<ProbeMsg>,
        input: Vec<Envelope<ProbeMsg>>,
        batch_size: usize,
    ) -> Result<Vec<Envelope<ProbeMsg>>, Failure> {
        let mut done = Vec::new();
        let mut input = input.into_iter().peekable();
        while input.peek().is_some() {
            let mut batch: Vec<_> = input.by_ref().take(batch_size).collect();
            for stage in &mut pipeline.stages {
                let mut output = Vec::new();
                stage.node.prepare(&batch);
                stage
                    .node
                    .process_batch(&stage.info, &mut batch, &mut output, &mut |_| {})
                    .map_err(|(seq, e)| (stage.info.name.clone(), seq, e))?;
                batch = output;
            }
            done.append(&mut batch);
        }
        for stage in &mut pipeline.stages {
            let mut held = Vec::new();
            stage.node.finish(&stage.info, &mut held).map_err(|e| (stage.info.name.clone(), 0, e))?;
            assert!(held.is_empty(), "probe nodes hold nothing back");
        }
        Ok(done)
    }

    /// The counts a stage reports.
    pub fn counts(pipeline: &Pipeline<ProbeMsg>, stage: usize) -> Vec<(String, u64)> {
        pipeline.stages[stage].node.report().counts
    }

    pub fn count(name: &str, n: u64) -> (String, u64) {
        (name.to_string(), n)
    }
}
