//! `fault`: passes every event on with its bytes untouched, except that at one chosen event
//! it fails in a chosen way, so that a deployment's failure handling can be watched at work.
//!
//! It takes lines and records and emits records: a record leaves as it came, a line leaves
//! as a record of the same bytes (as `pass` would make it). The registry checks kinds by
//! what a node declares, not by what flows, so a node that emitted lines as well could not
//! sit before the sink; this way `fault` fits anywhere after the source or after `pass`.
//!
//! The event is the envelope whose sequence number is `at` (for a line source: the 1-based
//! line number). The sequence number travels with the envelope across every hop, so `at`
//! names the same event wherever the node runs. Every message with that number meets the
//! fault (probe's nodes are one-to-one, so that is one message).
//!
//! | `action` | what happens at event `at` | what it simulates |
//! | --- | --- | --- |
//! | `error` | the node returns `NodeError::Failed("probe fault at event {at}")` | a step that fails cleanly |
//! | `panic` | `panic!("probe panic at event {at}")` | a bug in a step |
//! | `exit` | `std::process::exit(code)` (`code` 0 to 255, default 3); no destructor runs and nothing buffered is flushed | a process that quits early |
//! | `abort` | `std::process::abort()` (SIGABRT on Unix) | a process that crashes |
//! | `stall` | sleeps `stall_ms` (default 60000), then goes on | a hung process |
//!
//! In the memory profile every node runs in the one process, so `exit`, `abort` and `stall`
//! act on the whole run.

use std::fmt;
use std::time::Duration;

use hopline_model::{Context, NodeError, NodeKind, NodeReport, Transform};
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;

use crate::message::{LINE, ProbeMsg, RECORD};

pub const KIND: NodeKind<ProbeMsg> = NodeKind {
    name: "fault",
    summary: "passes events on as records; at event `at` does `action`: error, panic, exit, abort or stall",
    consumes: &[LINE, RECORD],
    emits: &[RECORD],
    requires: &[],
    build: |params| Ok(Box::new(Fault::new(params.read()?))),
};

/// `code` when `action: exit` gives none.
pub const DEFAULT_EXIT_CODE: u8 = 3;
/// `stall_ms` when `action: stall` gives none: a minute.
pub const DEFAULT_STALL_MS: u64 = 60_000;

/// When and how to fail. In YAML: `at` (required, from 1), `action` (required), `code` (only
/// with `exit`) and `stall_ms` (only with `stall`), e.g. `{at: 5, action: exit, code: 7}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultParams {
    /// Sequence number of the event to fail at, from 1.
    pub at: u64,
    pub action: FaultAction,
}

/// What the node does at event `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Returns a node error.
    Error,
    /// Panics.
    Panic,
    /// Exits the process with this status.
    Exit { code: u8 },
    /// Aborts the process.
    Abort,
    /// Sleeps this many milliseconds, then passes the message on.
    Stall { ms: u64 },
}

impl FaultAction {
    /// The action's name in the config.
    pub fn name(self) -> &'static str {
        match self {
            FaultAction::Error => "error",
            FaultAction::Panic => "panic",
            FaultAction::Exit { .. } => "exit",
            FaultAction::Abort => "abort",
            FaultAction::Stall { .. } => "stall",
        }
    }
}

/// The params as written: `code` and `stall_ms` are checked against `action` afterwards.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaultParams {
    #[serde(deserialize_with = "super::at_least_one")]
    at: u64,
    action: ActionName,
    #[serde(default)]
    code: Option<u8>,
    #[serde(default)]
    stall_ms: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ActionName {
    Error,
    Panic,
    Exit,
    Abort,
    Stall,
}

impl RawFaultParams {
    fn check(self) -> Result<FaultParams, String> {
        let action = match self.action {
            ActionName::Error => FaultAction::Error,
            ActionName::Panic => FaultAction::Panic,
            ActionName::Exit => FaultAction::Exit { code: self.code.unwrap_or(DEFAULT_EXIT_CODE) },
            ActionName::Abort => FaultAction::Abort,
            ActionName::Stall => FaultAction::Stall { ms: self.stall_ms.unwrap_or(DEFAULT_STALL_MS) },
        };
        let misplaced = [("code", self.code.is_some(), "exit"), ("stall_ms", self.stall_ms.is_some(), "stall")];
        for (key, given, owner) in misplaced {
            if given && action.name() != owner {
                return Err(format!(
                    "`{key}` applies only to action `{owner}`, and this fault's action is `{}`",
                    action.name()
                ));
            }
        }
        Ok(FaultParams { at: self.at, action })
    }
}

/// Read as the raw params, then checked as a whole inside the map's visit, so that an error
/// about how the keys go together still names the params' path and line.
impl<'de> Deserialize<'de> for FaultParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = FaultParams;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map with `at` and `action`, and `code` or `stall_ms` if the action takes one")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FaultParams, A::Error> {
                let raw = RawFaultParams::deserialize(MapAccessDeserializer::new(map))?;
                raw.check().map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_map(Visit)
    }
}

pub struct Fault {
    params: FaultParams,
    passed: u64,
    stalled: u64,
}

impl Fault {
    pub fn new(params: FaultParams) -> Self {
        Fault { params, passed: 0, stalled: 0 }
    }

    pub fn params(&self) -> FaultParams {
        self.params
    }

    /// Does the action, at event `seq`.
    #[cold]
    fn strike(&mut self, seq: u64) -> Result<(), NodeError> {
        match self.params.action {
            FaultAction::Error => Err(NodeError::Failed(format!("probe fault at event {seq}"))),
            FaultAction::Panic => panic!("probe panic at event {seq}"),
            FaultAction::Exit { code } => std::process::exit(i32::from(code)),
            FaultAction::Abort => std::process::abort(),
            FaultAction::Stall { ms } => {
                std::thread::sleep(Duration::from_millis(ms));
                self.stalled += 1;
                Ok(())
            }
        }
    }
}

impl Transform<ProbeMsg> for Fault {
    fn transform(&mut self, ctx: &Context<'_>, message: &mut ProbeMsg) -> Result<(), NodeError> {
        if ctx.seq() == self.params.at {
            self.strike(ctx.seq())?;
        }
        message.make_record();
        self.passed += 1;
        Ok(())
    }

    /// `passed`: messages passed on; with `action: stall`, also `stalled`: stalls done.
    fn report(&self) -> NodeReport {
        let mut counts = vec![("passed".to_string(), self.passed)];
        if let FaultAction::Stall { .. } = self.params.action {
            counts.push(("stalled".into(), self.stalled));
        }
        NodeReport { counts, incidents: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Instant;

    use bytes::Bytes;
    use hopline_model::{Node, Params};

    use super::*;
    use crate::nodes::testing::{FIRST_NODE_LINE, build_error, count, counts, envelope, lines, pipeline, run};

    fn params(yaml: &str) -> FaultParams {
        Params::from_yaml("test", yaml).unwrap().read().unwrap()
    }

    fn fault_after_pass(params: &str) -> String {
        format!("  - kind: pass\n  - kind: fault\n    params: {params}\n")
    }

    #[test]
    fn every_action_reads_with_its_defaults() {
        assert_eq!(params("{at: 1, action: error}"), FaultParams { at: 1, action: FaultAction::Error });
        assert_eq!(params("{at: 2, action: panic}").action, FaultAction::Panic);
        assert_eq!(params("{at: 3, action: exit}").action, FaultAction::Exit { code: DEFAULT_EXIT_CODE });
        assert_eq!(params("{at: 3, action: exit, code: 0}").action, FaultAction::Exit { code: 0 });
        assert_eq!(params("{at: 3, action: exit, code: 255}").action, FaultAction::Exit { code: 255 });
        assert_eq!(params("{at: 4, action: abort}").action, FaultAction::Abort);
        assert_eq!(params("{at: 5, action: stall}").action, FaultAction::Stall { ms: DEFAULT_STALL_MS });
        let p = params("at: 18446744073709551615\naction: stall\nstall_ms: 10\n");
        assert_eq!(p, FaultParams { at: u64::MAX, action: FaultAction::Stall { ms: 10 } });
    }

    #[test]
    fn an_unknown_action_names_the_key_and_lists_the_actions() {
        let err = build_error(&fault_after_pass("{at: 2, action: explode}"));
        assert_eq!(err.path, "nodes[1].params.action");
        assert_eq!(err.pos.unwrap().line, FIRST_NODE_LINE + 2);
        assert!(
            err.message
                .contains("unknown variant `explode`, expected one of `error`, `panic`, `exit`, `abort`, `stall`"),
            "{err}"
        );
    }

    #[test]
    fn bad_params_are_refused_with_their_path_and_line() {
        let refused = |params: &str, path: &str, says: &str| {
            let err = build_error(&fault_after_pass(params));
            assert_eq!(err.path, path, "{err}");
            assert_eq!(err.pos.unwrap().line, FIRST_NODE_LINE + 2, "{err}");
            assert!(err.message.contains(says), "{err}");
        };
        refused("{at: 0, action: error}", "nodes[1].params.at", "expected a whole number from 1, found 0");
        refused("{at: -1, action: error}", "nodes[1].params.at", "expected u64");
        refused("{action: error}", "nodes[1].params", "missing field `at`");
        refused("{at: 1}", "nodes[1].params", "missing field `action`");
        refused("{at: 1, action: exit, code: 256}", "nodes[1].params.code", "invalid value");
        refused("{at: 1, action: error, cod: 1}", "nodes[1].params.cod", "unknown field `cod`");
        refused("{at: 1, action: error, code: 1}", "nodes[1].params", "`code` applies only to action `exit`");
        refused("{at: 1, action: exit, stall_ms: 1}", "nodes[1].params", "`stall_ms` applies only to action `stall`");
        let err = build_error("  - kind: pass\n  - kind: fault\n");
        assert!(err.message.contains("missing field `at`"), "{err}");
    }

    #[test]
    fn error_stops_the_run_at_exactly_its_event_whatever_the_batching() {
        for batch_size in [1, 2, 4, 5, 6, 1024] {
            let mut pipeline = pipeline(&fault_after_pass("{at: 5, action: error}")).unwrap();
            let failure = run(&mut pipeline, lines(9), batch_size).unwrap_err();
            let expected = ("fault".to_string(), 5, NodeError::Failed("probe fault at event 5".into()));
            assert_eq!(failure, expected, "batch size {batch_size}");
            assert_eq!(counts(&pipeline, 1), [count("passed", 4)], "batch size {batch_size}");
        }
    }

    #[test]
    fn events_after_the_fault_or_before_it_pass_untouched() {
        let mut pipeline = pipeline(&fault_after_pass("{at: 10, action: error}")).unwrap();
        let output = run(&mut pipeline, lines(9), 4).unwrap();
        assert_eq!(output.len(), 9);
        for (i, e) in output.iter().enumerate() {
            assert_eq!(e.header.seq, i as u64 + 1);
            assert_eq!(e.payload, ProbeMsg::Record(Bytes::from(format!("{{\"n\":{}}}", i + 1))));
        }
        assert_eq!(counts(&pipeline, 1), [count("passed", 9)]);
    }

    #[test]
    fn panic_happens_at_exactly_its_event() {
        for batch_size in [1, 3, 1024] {
            let mut pipeline = pipeline(&fault_after_pass("{at: 3, action: panic}")).unwrap();
            let mut pipeline_ref = AssertUnwindSafe(&mut pipeline);
            let panic = catch_unwind(move || run(&mut pipeline_ref, lines(6), batch_size)).unwrap_err();
            assert_eq!(panic.downcast_ref::<String>().map(String::as_str), Some("probe panic at event 3"));
            assert_eq!(counts(&pipeline, 1), [count("passed", 2)], "batch size {batch_size}");
        }
        let mut pipeline = pipeline(&fault_after_pass("{at: 7, action: panic}")).unwrap();
        assert_eq!(run(&mut pipeline, lines(6), 2).unwrap().len(), 6);
    }

    #[test]
    fn exit_and_abort_do_nothing_before_their_event() {
        for action in ["{at: 4, action: exit, code: 9}", "{at: 4, action: abort}"] {
            let mut pipeline = pipeline(&fault_after_pass(action)).unwrap();
            assert_eq!(run(&mut pipeline, lines(3), 2).unwrap().len(), 3, "{action}");
            assert_eq!(counts(&pipeline, 1), [count("passed", 3)], "{action}");
        }
    }

    #[test]
    fn stall_sleeps_at_its_event_then_goes_on() {
        let mut pipeline = pipeline(&fault_after_pass("{at: 2, action: stall, stall_ms: 60}")).unwrap();
        let started = Instant::now();
        let output = run(&mut pipeline, lines(3), 1).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(60), "{:?}", started.elapsed());
        assert_eq!(output.len(), 3);
        assert_eq!(counts(&pipeline, 1), [count("passed", 3), count("stalled", 1)]);
    }

    #[test]
    fn lines_leave_as_records_of_the_same_bytes_and_records_as_they_came() {
        let mut fault = Fault::new(params("{at: 99, action: error}"));
        let info = pipeline("  - kind: fault\n    params: {at: 99, action: error}\n").unwrap().stages.remove(0).info;
        let mut input = vec![
            envelope(1, ProbeMsg::Line(Bytes::from_static(b"a"))),
            envelope(2, ProbeMsg::Record(Bytes::from_static(b"b"))),
        ];
        let expected = vec![
            envelope(1, ProbeMsg::Record(Bytes::from_static(b"a"))),
            envelope(2, ProbeMsg::Record(Bytes::from_static(b"b"))),
        ];
        let mut output = Vec::new();
        fault.process_batch(&info, &mut input, &mut output, &mut |_| {}).unwrap();
        assert_eq!(output, expected);
    }
}
