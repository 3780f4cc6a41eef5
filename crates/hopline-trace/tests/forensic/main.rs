//! The forensic trace crate against a realistic three-process run (one test binary, to keep
//! linking cheap).

mod chrome;
mod files;
mod fixture;
mod merge;
mod otlp_json;
mod summary;
