//! hopline's job services, over HTTP:
//!
//! - [`coordinator`]: the API users submit jobs to and follow them through (SSE); it keeps the
//!   job registry, knows its agents by their heartbeats, hands each queued job to one, and
//!   turns what the agent reports into the job's event stream.
//! - [`agent`]: runs on each host; takes jobs from the coordinator, runs each as a
//!   `hopline run --narrate` child, and sends back every line its processes print and the
//!   outcome.
//! - [`client`]: `hopline submit`: sends a job and, with `--follow`, renders its stream.
//!
//! Every request that changes state carries the shared bearer token, coordinator to agent
//! included; the job's correlation id and `traceparent` go with it on every hop (headers
//! between services, `CORRELATION_ID` and `TRACEPARENT` to the run).

pub mod agent;
mod auth;
pub mod client;
pub mod coordinator;
mod wire;

pub use auth::{Token, TokenError};
