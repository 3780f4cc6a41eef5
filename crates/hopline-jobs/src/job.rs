//! A job's identity and its state machine.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A job's id: 128 random bits, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(u128);

impl JobId {
    /// A fresh id from the operating system's random source.
    pub fn generate() -> Result<JobId, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(JobId(u128::from_be_bytes(bytes)))
    }

    /// Reads 32 lowercase or uppercase hex digits.
    pub fn parse(text: &str) -> Option<JobId> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(JobId)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }

    /// Whether a job may go from `self` to `to`.
    pub fn may_become(self, to: JobState) -> bool {
        use JobState::*;
        matches!((self, to), (Queued, Running | Failed | Cancelled) | (Running, Succeeded | Failed | Cancelled))
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A transition the state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} job cannot become {to}")]
pub struct TransitionError {
    pub from: JobState,
    pub to: JobState,
}

/// When a job entered its states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTimes {
    pub created: SystemTime,
    pub started: Option<SystemTime>,
    pub finished: Option<SystemTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_read_back() {
        let a = JobId::generate().unwrap();
        let b = JobId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(JobId::parse(&a.to_string()), Some(a));
        assert_eq!(a.to_string().len(), 32);
        for bad in ["", "123", &"g".repeat(32), &"0".repeat(33), "+0000000000000000000000000000000"] {
            assert_eq!(JobId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_forward_transitions_are_allowed() {
        use JobState::*;
        let all = [Queued, Running, Succeeded, Failed, Cancelled];
        let allowed: Vec<(JobState, JobState)> =
            all.iter().flat_map(|&a| all.iter().map(move |&b| (a, b))).filter(|&(a, b)| a.may_become(b)).collect();
        assert_eq!(
            allowed,
            [
                (Queued, Running),
                (Queued, Failed),
                (Queued, Cancelled),
                (Running, Succeeded),
                (Running, Failed),
                (Running, Cancelled)
            ]
        );
        assert!(all.iter().filter(|s| s.is_terminal()).all(|&s| all.iter().all(|&t| !s.may_become(t))));
    }
}
