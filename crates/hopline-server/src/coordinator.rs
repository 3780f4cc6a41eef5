//! The coordinator: the HTTP API users submit jobs to and watch them through, and agents
//! take jobs from and report to.
//!
//! A submitted job is queued; the dispatcher hands it to the live agent with the fewest jobs
//! (`POST {agent}/v1/runs`, with the token, `x-correlation-id` and `traceparent`), marking it
//! running. The agent sends back every line the run's processes print: a narration line
//! (`hopline run --narrate`) becomes a `narration` event, anything else a `log` event. It
//! ends the job with its outcome. Cancelling a running job asks its agent to stop the run
//! (gracefully, then by force); the agent reports it cancelled. An agent that stops
//! heartbeating for `agent_timeout` has its jobs failed with the reason.
//!
//! | method and path | what it does | token |
//! | --- | --- | --- |
//! | `POST /v1/jobs` | submits a job (JSON: `config_name`, `config`, `input`, `output`); `201` with the job | yes |
//! | `GET /v1/jobs` | every job, oldest first | yes (it lists every id) |
//! | `GET /v1/jobs/{id}` | one job | no |
//! | `DELETE /v1/jobs/{id}` | cancels a job that has not finished | yes |
//! | `GET /v1/jobs/{id}/events` | the job's events as SSE, resumed after `Last-Event-ID` | no |
//! | `POST /v1/agents` | an agent's heartbeat ([`crate::wire::Heartbeat`]) | yes |
//! | `GET /v1/agents` | the live agents and what they run | yes |
//! | `POST /v1/jobs/{id}/lines` | lines a job's processes printed (from its agent) | yes |
//! | `POST /v1/jobs/{id}/outcome` | how a job's run ended (from its agent) | yes |
//!
//! - **Tokens.** Every request that changes state carries `Authorization: Bearer <token>`,
//!   compared in constant time; the token is read from a file or a variable and never printed.
//!   So do the lists (jobs, agents). A job's own view and stream need only its id: 128 random
//!   bits, known to whoever submitted it, so the id is the capability to read it.
//! - **Correlation.** `x-correlation-id` (32 hex digits or a UUID) is taken, or one is made;
//!   a malformed one is a `400` that says what was expected. `traceparent`, when sent, must be
//!   a valid W3C version-00 value. Both are kept with the job and go with it to its agent.
//! - **Bounds.** Request bodies are at most `max_body_bytes` (`413` beyond); each job keeps at
//!   most `event_capacity` events (see [`hopline_jobs::Registry`]); finished jobs are removed
//!   after `retention`.
//! - **Streams** end after the job's terminal event (`succeeded`, `failed`, `cancelled`), never
//!   on an idle timer: a quiet job's stream gets a comment every `keep_alive`. Any number of
//!   clients may follow one job; a client that goes away changes nothing.

mod agents;
mod http;

use std::sync::Arc;
use std::time::Duration;

use hopline_jobs::Registry;
use hopline_runtime::tracing::ServiceTracer;

use crate::Token;

/// How a coordinator behaves.
#[derive(Debug)]
pub struct Settings {
    pub token: Token,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Events kept per job.
    pub event_capacity: usize,
    /// How long finished jobs are kept.
    pub retention: Duration,
    /// How often a quiet stream gets a comment.
    pub keep_alive: Duration,
    /// An agent silent this long is presumed gone: its jobs fail.
    pub agent_timeout: Duration,
    /// Agents known from the configuration, `(name, base URL)`: the coordinator asks each for
    /// its health every second (`GET {url}/v1/health`) instead of waiting for heartbeats.
    pub agents: Vec<(String, String)>,
}

impl Settings {
    /// The largest request body unless configured: a pipeline config is a few KiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
    pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
    /// Agents heartbeat every second; ten missed heartbeats and an agent is gone.
    pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(10);

    pub fn new(token: Token) -> Settings {
        Settings {
            token,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            event_capacity: Registry::DEFAULT_EVENT_CAPACITY,
            retention: Registry::DEFAULT_RETENTION,
            keep_alive: Self::DEFAULT_KEEP_ALIVE,
            agent_timeout: Self::DEFAULT_AGENT_TIMEOUT,
            agents: Vec::new(),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes. Finished jobs are expired
/// while it runs.
pub async fn serve(
    listener: tokio::net::TcpListener,
    settings: Settings,
    tracer: Option<Arc<ServiceTracer>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::new(settings.event_capacity, settings.retention));
    let spans = Arc::new(http::JobSpans::default());
    let expiring = Arc::clone(&registry);
    let every = (settings.retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            expiring.expire(std::time::SystemTime::now());
        }
    });
    if let Some(tracer) = &tracer {
        // A job's span ends when the job does, wherever that was decided.
        let (registry, spans, tracer) = (Arc::clone(&registry), Arc::clone(&spans), Arc::clone(tracer));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                spans.end_finished(&registry, &tracer);
            }
        });
    }
    let agents = Arc::new(agents::Agents::default());
    if !settings.agents.is_empty() {
        tokio::spawn(agents::poll_configured(Arc::clone(&registry), Arc::clone(&agents), settings.agents.clone()));
    }
    tokio::spawn(agents::dispatch(
        Arc::clone(&registry),
        Arc::clone(&agents),
        settings.token.clone(),
        settings.agent_timeout,
    ));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(std::io::Error::other)?;
    // Open streams end when the coordinator stops: graceful shutdown waits for every
    // connection, and a stream otherwise lasts until its job ends.
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    let app = http::router(http::AppState {
        stop,
        registry,
        agents,
        client,
        spans,
        tracing: tracer.is_some(),
        settings: Arc::new(settings),
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Runs a coordinator on `listen` (`127.0.0.1:0` picks a free port) on a runtime of its own,
/// calling `on_listening` with the bound address once it takes connections, until SIGINT or
/// SIGTERM (open streams are closed).
pub fn run_blocking(
    listen: &str,
    settings: Settings,
    tracer: Option<ServiceTracer>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let tracer = tracer.map(Arc::new);
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        on_listening(listener.local_addr()?);
        serve(listener, settings, tracer.clone(), stop_signal()).await
    });
    // The tasks holding the tracer go with the runtime; then its last spans are flushed.
    drop(runtime);
    if let Some(tracer) = tracer.and_then(|t| Arc::try_unwrap(t).ok()) {
        tracer.finish();
    }
    result
}

/// Completes on the first SIGINT or SIGTERM.
pub(crate) async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        // Without signal handlers, run until killed.
        _ => std::future::pending::<()>().await,
    }
}
