//! The multiprocess profile: a pipeline's process groups in supervised worker processes,
//! connected group to group by signed, batched TCP frames.
//!
//! - [`supervisor`]: `hopline run` for a multiprocess config: starts the workers in a fixed,
//!   logged order, waits for READY, starts ingress, watches heartbeats, drains on stop, and
//!   turns every failure into a [`Failure`] with its place and root cause.
//! - [`worker`]: one process group: its nodes between the upstream link (or the source) and
//!   the downstream link (or the sink), run by the memory profile's executor.
//! - `link`: the data plane (frames straight from group to group; the supervisor is never on
//!   it) and its connection policy.
//! - `control`: the supervisor's connection to each worker (HELLO, PEERS, READY, START,
//!   heartbeats, DONE, FAILED, STOP), JSON in signed control frames.
//! - [`bootstrap`]: what a worker is told at start, over its stdin pipe (never argv or env).
//! - [`failure`]: the failure taxonomy.

pub mod bootstrap;
mod control;
pub mod failure;
pub mod link;
pub mod supervisor;
pub mod worker;

pub use bootstrap::Bootstrap;
pub use control::GroupStatus;
pub use failure::{Failure, FailureKind};
pub use link::MAX_CONNECTIONS;
pub use supervisor::{MultiprocessFailure, Supervised, WorkerProgram, supervise};
pub use worker::run_worker;
