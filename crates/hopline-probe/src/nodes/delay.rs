//! `delay`: passes every event on with its bytes untouched, sleeping `every_ms` milliseconds
//! after every `every`-th one, so that a run lasts as long as a test needs while it keeps
//! moving (unlike `fault` with `action: stall`, which stops it at one event).
//!
//! Like `fault`, it takes lines and records and emits records (a line leaves as a record of
//! the same bytes), so it fits anywhere after the source or after `pass`.
//!
//! A run of `n` messages sleeps `n / every` times: about `n / every * every_ms` milliseconds
//! in all.

use std::time::Duration;

use hopline_model::{Context, NodeError, NodeKind, NodeReport, Transform};

use crate::message::{LINE, ProbeMsg, RECORD};

pub const KIND: NodeKind<ProbeMsg> = NodeKind {
    name: "delay",
    summary: "passes events on as records, sleeping `every_ms` after every `every` of them",
    consumes: &[LINE, RECORD],
    emits: &[RECORD],
    requires: &[],
    build: |params| Ok(Box::new(Delay::new(params.read()?))),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayParams {
    /// Milliseconds to sleep each time (0 sleeps not at all).
    pub every_ms: u64,
    /// Messages between sleeps, from 1 (default 1: a sleep after each message).
    #[serde(default = "DelayParams::default_every", deserialize_with = "super::at_least_one")]
    pub every: u64,
}

impl DelayParams {
    fn default_every() -> u64 {
        1
    }
}

pub struct Delay {
    params: DelayParams,
    passed: u64,
    sleeps: u64,
}

impl Delay {
    pub fn new(params: DelayParams) -> Self {
        Delay { params, passed: 0, sleeps: 0 }
    }
}

impl Transform<ProbeMsg> for Delay {
    fn transform(&mut self, _: &Context<'_>, message: &mut ProbeMsg) -> Result<(), NodeError> {
        message.make_record();
        self.passed += 1;
        if self.passed % self.params.every == 0 {
            std::thread::sleep(Duration::from_millis(self.params.every_ms));
            self.sleeps += 1;
        }
        Ok(())
    }

    /// `passed`: messages passed on; `sleeps`: times it slept.
    fn report(&self) -> NodeReport {
        NodeReport {
            counts: vec![("passed".into(), self.passed), ("sleeps".into(), self.sleeps)],
            incidents: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;
    use hopline_model::{Node, Params};

    use super::*;
    use crate::nodes::testing::{FIRST_NODE_LINE, build_error, count, counts, envelope, lines, pipeline, run};

    #[test]
    fn sleeps_after_every_nth_message_across_batches() {
        let mut pipeline = pipeline("  - kind: pass\n  - kind: delay\n    params: {every_ms: 15, every: 2}\n").unwrap();
        let started = Instant::now();
        let output = run(&mut pipeline, lines(7), 3).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(45), "{:?}", started.elapsed());
        assert_eq!(output.iter().map(|e| e.header.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(counts(&pipeline, 1), [count("passed", 7), count("sleeps", 3)]);
    }

    #[test]
    fn every_defaults_to_one() {
        let params: DelayParams = Params::from_yaml("test", "{every_ms: 0}").unwrap().read().unwrap();
        assert_eq!(params, DelayParams { every_ms: 0, every: 1 });
        let mut pipeline = pipeline("  - kind: pass\n  - kind: delay\n    params: {every_ms: 0}\n").unwrap();
        run(&mut pipeline, lines(4), 1024).unwrap();
        assert_eq!(counts(&pipeline, 1), [count("passed", 4), count("sleeps", 4)]);
    }

    #[test]
    fn lines_leave_as_records_of_the_same_bytes_and_records_as_they_came() {
        let info = pipeline("  - kind: delay\n    params: {every_ms: 0}\n").unwrap().stages.remove(0).info;
        let mut delay = Delay::new(DelayParams { every_ms: 0, every: 1 });
        let mut input = vec![
            envelope(1, ProbeMsg::Line(Bytes::from_static(b"a"))),
            envelope(2, ProbeMsg::Record(Bytes::from_static(b"b"))),
        ];
        let expected = vec![
            envelope(1, ProbeMsg::Record(Bytes::from_static(b"a"))),
            envelope(2, ProbeMsg::Record(Bytes::from_static(b"b"))),
        ];
        let mut output = Vec::new();
        delay.process_batch(&info, &mut input, &mut output, &mut |_| {}).unwrap();
        assert_eq!(output, expected);
    }

    #[test]
    fn bad_params_are_refused_with_their_path_and_line() {
        let refused = |params: &str, path: &str, says: &str| {
            let err = build_error(&format!("  - kind: pass\n  - kind: delay\n    params: {params}\n"));
            assert_eq!(err.path, path, "{err}");
            assert_eq!(err.pos.unwrap().line, FIRST_NODE_LINE + 2, "{err}");
            assert!(err.message.contains(says), "{err}");
        };
        refused("{every: 2}", "nodes[1].params", "missing field `every_ms`");
        refused("{every_ms: 1, every: 0}", "nodes[1].params.every", "expected a whole number from 1, found 0");
        refused("{every_ms: -1}", "nodes[1].params.every_ms", "expected u64");
        refused("{every_ms: 1, evry: 2}", "nodes[1].params.evry", "unknown field `evry`");
    }
}
