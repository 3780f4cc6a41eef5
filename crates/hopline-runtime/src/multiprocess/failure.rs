//! Failures of a multiprocess run, each with its place and its root cause.
//!
//! Every failure names its kind (a small taxonomy), the process group, the worker's pid, the
//! node and the event's sequence number where there is one, and the cause as the worker saw
//! it (its error chain or its panic message). When one failure causes others (a worker dies,
//! so its neighbours lose their links), the supervisor reports the first failure of the
//! highest rank as the root cause and the rest as consequences.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of thing went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FailureKind {
    /// A node returned an error or panicked, or the source or sink failed, inside a worker.
    Execution,
    /// A worker died, exited before finishing, or stopped answering.
    WorkerFailed,
    /// A link between process groups broke, or a worker could not bind, connect or send.
    Transport,
    /// A worker could not be started or bootstrapped.
    LifecycleStart,
    /// Not every worker was READY within `ready_timeout`.
    LifecycleReady,
    /// The workers did not drain within `stop_timeout` after a stop.
    LifecycleStop,
}

impl FailureKind {
    /// The kind as users see it in messages.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Execution => "execution",
            FailureKind::WorkerFailed => "worker-failed",
            FailureKind::Transport => "transport",
            FailureKind::LifecycleStart => "lifecycle-start",
            FailureKind::LifecycleReady => "lifecycle-ready",
            FailureKind::LifecycleStop => "lifecycle-stop",
        }
    }

    /// How likely this kind is to be the root cause rather than a consequence (lower is more):
    /// a node's own error explains a dead worker, and a dead worker explains its broken links.
    fn rank(self) -> u8 {
        match self {
            FailureKind::Execution => 0,
            FailureKind::LifecycleStart | FailureKind::LifecycleReady => 1,
            FailureKind::WorkerFailed => 2,
            FailureKind::LifecycleStop => 3,
            FailureKind::Transport => 4,
        }
    }
}

/// The longest cause a worker sends.
pub const MAX_CAUSE_BYTES: usize = 16 << 10;

/// One failure, with its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The process group's name.
    pub group: String,
    pub pid: Option<u32>,
    pub node: Option<String>,
    pub seq: Option<u64>,
    /// The cause, as the worker (or the supervisor) saw it: an error chain or a panic message.
    pub cause: String,
    /// Set when the failure is the sink's stdout having been closed by its reader.
    #[serde(default)]
    pub stdout_closed: bool,
    /// Set when this is most likely what another failure did to this worker (a link its peer
    /// closed or reset, a write to a peer that died): it then yields the root cause to any
    /// failure of the same kind that is not.
    #[serde(default)]
    pub consequence: bool,
}

impl Failure {
    pub fn new(kind: FailureKind, group: &str, pid: Option<u32>, cause: impl Into<String>) -> Failure {
        Failure {
            kind,
            group: group.into(),
            pid,
            node: None,
            seq: None,
            cause: cause.into(),
            stdout_closed: false,
            consequence: false,
        }
    }

    /// The failure with its cause cut to [`MAX_CAUSE_BYTES`], so that it always fits a control
    /// frame (a node may put anything in its error).
    pub fn bounded(mut self) -> Failure {
        if self.cause.len() > MAX_CAUSE_BYTES {
            let mut end = MAX_CAUSE_BYTES;
            while !self.cause.is_char_boundary(end) {
                end -= 1;
            }
            self.cause.truncate(end);
            self.cause.push_str(" [cut at 16 KiB]");
        }
        self
    }

    /// Picks the root cause among failures in the order they arrived: the first of the best
    /// rank, a failure that is not a likely consequence before one that is.
    pub fn root_index(failures: &[Failure]) -> Option<usize> {
        failures.iter().enumerate().min_by_key(|(i, f)| (f.kind.rank(), f.consequence, *i)).map(|(i, _)| i)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: process group `{}`", self.kind.label(), self.group)?;
        if let Some(pid) = self.pid {
            write!(f, " (worker pid {pid})")?;
        }
        if let Some(node) = &self.node {
            write!(f, ", node `{node}`")?;
        }
        if let Some(seq) = self.seq {
            write!(f, ", event {seq}")?;
        }
        write!(f, ": {}", self.cause)
    }
}

/// An error with its `source()` chain, as one line: `outer: inner: innermost`.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_group_pid_node_and_event() {
        let mut failure = Failure::new(FailureKind::Execution, "policy", Some(42), "daily limit table is corrupt");
        failure.node = Some("policies".into());
        failure.seq = Some(17);
        assert_eq!(
            failure.to_string(),
            "execution: process group `policy` (worker pid 42), node `policies`, event 17: daily limit table is corrupt"
        );
    }

    #[test]
    fn root_cause_prefers_a_node_error_over_the_links_it_broke() {
        let failures = vec![
            Failure::new(FailureKind::Transport, "egress", Some(3), "upstream link closed"),
            Failure::new(FailureKind::WorkerFailed, "policy", Some(2), "exited with code 1"),
            Failure::new(FailureKind::Execution, "policy", Some(2), "panicked"),
            Failure::new(FailureKind::Transport, "ingest", Some(1), "broken pipe"),
        ];
        assert_eq!(Failure::root_index(&failures), Some(2));
        assert_eq!(Failure::root_index(&failures[..2]), Some(1));
        assert_eq!(Failure::root_index(&[]), None);
    }

    #[test]
    fn a_rejected_frame_is_the_root_cause_before_the_reset_it_led_to() {
        let mut reset = Failure::new(FailureKind::Transport, "ingest", Some(1), "connection reset by peer");
        reset.consequence = true;
        let rejected = Failure::new(FailureKind::Transport, "egress", Some(3), "a frame was rejected");
        assert_eq!(Failure::root_index(&[reset, rejected]), Some(1));
    }

    #[test]
    fn a_huge_cause_is_cut_at_a_character_boundary() {
        let failure = Failure::new(FailureKind::Execution, "g", None, "é".repeat(MAX_CAUSE_BYTES));
        let cut = failure.bounded();
        assert!(cut.cause.len() <= MAX_CAUSE_BYTES + 20);
        assert!(cut.cause.ends_with(" [cut at 16 KiB]"));
    }

    #[test]
    fn chain_joins_sources_without_repeating_them() {
        let io = std::io::Error::other("disk full");
        let outer = crate::adapters::SinkError::Write { path: "out.txt".into(), source: io };
        assert_eq!(chain(&outer), "cannot write out.txt: disk full");
    }
}
