//! hopline's runtime: runs a built [`Pipeline`](hopline_model::Pipeline) between a source and
//! a sink, and reports what happened.
//!
//! - [`adapters`]: sources and sinks (NDJSON files, stdin, stdout).
//! - [`memory`]: the memory profile executor: one process, one thread, batches pushed through
//!   the nodes in order, output in input order.
//! - [`run`]: from a config file to a finished run: resolve paths, open adapters, build the
//!   pipeline, execute, report.
//! - [`multiprocess`]: the multiprocess profile: supervisor, workers, the data plane between
//!   process groups, lifecycle and failures.
//! - [`report`]: the run summary.

pub mod adapters;
pub mod memory;
pub mod multiprocess;
pub mod narration;
pub mod report;
pub mod run;
pub mod tracing;

pub use report::RunReport;
pub use run::{Progress, RunError, RunOptions, load_config, run_pipeline};
