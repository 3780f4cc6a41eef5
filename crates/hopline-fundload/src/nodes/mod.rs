//! fund_load's nodes, one file each: its params, its state, its behaviour and its tests.

pub mod features;
pub mod format;
pub mod idempotency;
pub mod parse;
pub mod policies;
pub mod time_keys;

use hopline_model::NodeError;

use crate::message::LoadMsg;

/// The error a node returns for a message kind the registry should have kept from it.
pub(crate) fn unexpected(message: &LoadMsg) -> NodeError {
    use hopline_model::Message;
    NodeError::UnexpectedMessage { got: message.kind() }
}
