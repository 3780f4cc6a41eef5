//! `features`: values derived from one attempt alone; here, the effective amount.
//!
//! On a Monday (UTC) the effective amount is the amount times `monday_multiplier`; on other
//! days it is the amount. Every amount check and every total downstream uses it. A multiplier
//! of 1 (the default) turns the feature off.

use hopline_model::{Context, NodeError, NodeKind, Transform};

use crate::message::{ATTEMPT, DECISION, LoadMsg};
use crate::money::{Multiplier, SCALE};
use crate::time::Weekday;

pub const KIND: NodeKind<LoadMsg> = NodeKind {
    name: "features",
    summary: "sets each attempt's effective amount (the Monday multiplier)",
    consumes: &[ATTEMPT, DECISION],
    emits: &[ATTEMPT, DECISION],
    requires: &["time_keys"],
    build: |params| Ok(Box::new(Features { params: params.read()? })),
};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesParams {
    /// Multiplier applied to amounts on Mondays (UTC); at least 1.
    #[serde(default = "one")]
    pub monday_multiplier: Multiplier,
}

fn one() -> Multiplier {
    Multiplier::ONE
}

impl Default for FeaturesParams {
    fn default() -> Self {
        FeaturesParams { monday_multiplier: Multiplier::ONE }
    }
}

pub struct Features {
    pub params: FeaturesParams,
}

impl Transform<LoadMsg> for Features {
    fn transform(&mut self, _: &Context<'_>, message: &mut LoadMsg) -> Result<(), NodeError> {
        match message {
            LoadMsg::Attempt(attempt) => {
                let multiplier =
                    if attempt.weekday == Weekday::Monday as u8 { self.params.monday_multiplier.0 } else { SCALE };
                attempt.effective = attempt.amount_cents.saturating_mul(u128::from(multiplier));
                Ok(())
            }
            LoadMsg::Decision(_) => Ok(()),
            other => Err(super::unexpected(other)),
        }
    }
}
