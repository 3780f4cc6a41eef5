//! `time_keys`: the weekday and the week of an attempt's UTC day.
//!
//! The week is the 7-day window that starts on `week_start` (Monday unless configured) at
//! 00:00:00 UTC, named by its first day. Decisions pass through untouched.

use hopline_model::{Context, NodeError, NodeKind, Transform};

use crate::message::{ATTEMPT, DECISION, LoadMsg};
use crate::time::{Weekday, week_of};

pub const KIND: NodeKind<LoadMsg> = NodeKind {
    name: "time_keys",
    summary: "sets the weekday and the week (from `week_start`) of each attempt's UTC day",
    consumes: &[ATTEMPT, DECISION],
    emits: &[ATTEMPT, DECISION],
    requires: &["parse"],
    build: |params| Ok(Box::new(TimeKeys { params: params.read()? })),
};

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeKeysParams {
    /// First day of the week for weekly windows.
    #[serde(default)]
    pub week_start: Weekday,
}

pub struct TimeKeys {
    pub params: TimeKeysParams,
}

impl Transform<LoadMsg> for TimeKeys {
    fn transform(&mut self, _: &Context<'_>, message: &mut LoadMsg) -> Result<(), NodeError> {
        match message {
            LoadMsg::Attempt(attempt) => {
                attempt.weekday = Weekday::of_day(attempt.day).index() as u8;
                attempt.week = week_of(attempt.day, self.params.week_start);
                Ok(())
            }
            LoadMsg::Decision(_) => Ok(()),
            other => Err(super::unexpected(other)),
        }
    }
}
