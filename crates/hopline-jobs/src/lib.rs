//! Jobs: pipeline runs submitted over HTTP and watched live.
//!
//! This crate is the coordinator's memory, without I/O: the [`Registry`] of jobs, each job's
//! guarded [`JobState`] machine with its timestamps, and its [`EventBuffer`], the bounded,
//! numbered stream of events (narration, log lines, state changes, the terminal event) that
//! clients follow over SSE and resume with `Last-Event-ID`.
//!
//! - A job id is 128 random bits in hex: unguessable.
//! - States go `queued → running → succeeded | failed | cancelled`, and `queued` may go
//!   straight to `failed` or `cancelled`; anything else is refused. A terminal state appends
//!   the stream's terminal event (`succeeded`, `failed` or `cancelled`), after which the
//!   stream takes nothing more.
//! - Each job keeps at most `event_capacity` events ([`Registry::DEFAULT_EVENT_CAPACITY`]);
//!   older ones are evicted first. A client resuming from an evicted id is told how many it
//!   missed. The terminal event, being the newest, is always kept.
//! - Finished jobs are removed `retention` after they finished ([`Registry::expire`]).

mod events;
mod job;
mod registry;

pub use events::{EventBuffer, EventKind, Resume, StreamEvent, sse_comment};
pub use job::{JobId, JobState, JobTimes, TransitionError};
pub use registry::{JobRequest, JobView, Registry, RegistryError};
