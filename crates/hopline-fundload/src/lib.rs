//! fund_load: velocity limits on fund loads, hopline's reference app.
//!
//! Each input line is an attempt by a customer to load money onto a card; each output line
//! says whether it was accepted. The rules are in `RULES.md` beside this crate. The app is a
//! set of nodes registered under the app name `fund_load`:
//!
//! `parse` → `time_keys` → `idempotency` → `features` → `policies` → `format`
//!
//! Every limit, multiplier and switch is a node param, so the scenarios (`baseline`,
//! `exp_mp`) are config files, not code.

pub mod generate;
pub mod message;
pub mod money;
pub mod nodes;
pub mod prime;
pub mod table;
pub mod time;

use hopline_model::Registry;

pub use message::LoadMsg;

/// The app name configs use.
pub const APP: &str = "fund_load";

/// fund_load's node kinds.
pub fn registry() -> Registry<LoadMsg> {
    let mut registry = Registry::new(APP);
    registry
        .register(nodes::parse::KIND)
        .register(nodes::time_keys::KIND)
        .register(nodes::idempotency::KIND)
        .register(nodes::features::KIND)
        .register(nodes::policies::KIND)
        .register(nodes::format::KIND);
    registry
}
