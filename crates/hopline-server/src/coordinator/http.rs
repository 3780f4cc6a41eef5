//! The routes: JSON in and out, errors as `{"error": "..."}` with the status that fits.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use hopline_jobs::{EventKind, JobId, JobRequest, JobState, Registry, RegistryError};
use hopline_model::trace::SpanKind;
use hopline_model::{CorrelationId, TraceContext};
use hopline_runtime::narration::Narration;
use hopline_runtime::tracing::{OpenSpan, ServiceTracer};
use serde::Deserialize;
use tokio::sync::watch;

use super::Settings;
use super::agents::Agents;
use crate::wire::{Heartbeat, Lines, Outcome};

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) registry: Arc<Registry>,
    pub(crate) agents: Arc<Agents>,
    pub(crate) client: reqwest::Client,
    pub(crate) spans: Arc<JobSpans>,
    /// Whether the coordinator traces (then each job gets a span, the agent's parent).
    pub(crate) tracing: bool,
    /// Becomes true when the coordinator stops: open streams end.
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) settings: Arc<Settings>,
}

/// The open spans of the jobs this coordinator handles.
#[derive(Default)]
pub(crate) struct JobSpans(std::sync::Mutex<std::collections::HashMap<JobId, (OpenSpan, CorrelationId)>>);

impl JobSpans {
    /// Ends the spans of the jobs that have finished (or are gone).
    pub(crate) fn end_finished(&self, registry: &Registry, tracer: &ServiceTracer) {
        let mut spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        spans.retain(|id, (span, correlation_id)| {
            let view = registry.view(*id);
            let over = view.as_ref().is_none_or(|v| v.state.is_terminal());
            if over {
                let failure = view
                    .filter(|v| v.state != JobState::Succeeded)
                    .map(|v| format!("{}: {}", v.state, v.reason.unwrap_or_default()));
                tracer.record(span.end(*correlation_id, failure));
            }
            !over
        });
    }
}

pub(crate) fn router(state: AppState) -> Router {
    let limit = state.settings.max_body_bytes;
    Router::new()
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(view).delete(cancel))
        .route("/v1/jobs/{id}/events", get(events))
        .route("/v1/jobs/{id}/lines", post(lines))
        .route("/v1/jobs/{id}/outcome", post(outcome))
        .route("/v1/agents", post(heartbeat).get(agents))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// An error answer: the status and `{"error": message}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn unauthorized() -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "this request needs `Authorization: Bearer <token>`");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.settings.token.admits(presented)
}

fn no_job(text: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no job {text}"))
}

/// `POST /v1/jobs`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submit {
    /// The config's file name, for people.
    #[serde(default)]
    config_name: Option<String>,
    /// The config's text.
    config: String,
    /// Paths on the agent's host.
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    output: Option<String>,
}

async fn submit(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let correlation_id = match headers.get("x-correlation-id") {
        None => fresh_correlation_id(),
        Some(value) => match value.to_str().ok().and_then(CorrelationId::parse) {
            Some(id) => id,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "x-correlation-id: expected 32 hex digits or a UUID (8-4-4-4-12 hex digits)",
                );
            }
        },
    };
    let traceparent = match headers.get("traceparent") {
        None => None,
        Some(value) => match value.to_str().ok().and_then(TraceContext::parse_traceparent) {
            Some(context) => Some(context.to_string()),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "traceparent: expected a W3C version-00 value, 00-<32 hex>-<16 hex>-<2 hex>, ids not all zero",
                );
            }
        },
    };
    let submit: Submit = match serde_json::from_slice(&body) {
        Ok(submit) => submit,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body must be a JSON object with `config` (the config's text) and optionally `config_name`, `input`, `output`: {e}"
                ),
            );
        }
    };
    if submit.config.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "config: the pipeline config's text is empty");
    }
    // With tracing, the job's span (a child of the client's) is what the agent continues.
    let span = state
        .tracing
        .then(|| OpenSpan::begin(SpanKind::Job, traceparent.as_deref().and_then(TraceContext::parse_traceparent)));
    let request = JobRequest {
        config_name: submit.config_name.unwrap_or_else(|| "config.yml".into()),
        config_text: submit.config,
        input: submit.input,
        output: submit.output,
        correlation_id: correlation_id.to_string(),
        traceparent: span.map(|s| s.context.to_string()).or(traceparent),
    };
    let id = match state.registry.submit(request) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Some(span) = span {
        state.spans.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (span, correlation_id));
    }
    state.agents.wake.notify_one();
    let Some(view) = state.registry.view(id) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the job vanished as it was made");
    };
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("/v1/jobs/{id}")) {
        headers.insert(header::LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&correlation_id.to_string()) {
        headers.insert("x-correlation-id", value);
    }
    response
}

fn fresh_correlation_id() -> CorrelationId {
    let mut bytes = [0u8; 16];
    // The job id's own source; were it to fail, the id would still be unique enough to
    // correlate by, which is all it is for.
    let _ = getrandom::fill(&mut bytes);
    CorrelationId(u128::from_be_bytes(bytes))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // The list gives every job's id, and an id is what lets one read a job: token only.
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    Json(serde_json::json!({ "jobs": state.registry.list() })).into_response()
}

async fn view(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(id) = JobId::parse(&id) else { return no_job(&id) };
    match state.registry.view(id) {
        Some(view) => Json(view).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
    }
}

async fn cancel(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(id) = JobId::parse(&id) else { return no_job(&id) };
    if let Some((name, url)) = state.agents.agent_of(id) {
        // Running on an agent: it stops the run (gracefully, then by force) and reports the
        // job cancelled. If it cannot be reached, the job is cancelled here.
        let asked = state
            .client
            .post(format!("{url}/v1/runs/{id}/cancel"))
            .header("authorization", state.settings.token.header_value().as_str())
            .send()
            .await;
        match asked {
            Ok(response) if response.status().is_success() => {
                let mut view = serde_json::to_value(state.registry.view(id)).unwrap_or_default();
                view["cancelling"] = true.into();
                return (StatusCode::ACCEPTED, Json(view)).into_response();
            }
            Ok(response) => {
                let reason =
                    format!("cancelled by the client; agent `{name}` answered {} to the stop", response.status());
                return finish_cancel(&state, id, reason);
            }
            Err(e) => {
                let reason =
                    format!("cancelled by the client; agent `{name}` could not be reached to stop the run: {e}");
                return finish_cancel(&state, id, reason);
            }
        }
    }
    finish_cancel(&state, id, "cancelled by the client".into())
}

fn finish_cancel(state: &AppState, id: JobId, reason: String) -> Response {
    state.agents.finished(id);
    match state.registry.transition(id, JobState::Cancelled, Some(reason), None) {
        Ok(view) => Json(view).into_response(),
        Err(RegistryError::NotFound(_)) => error(StatusCode::NOT_FOUND, format!("no job {id}")),
        Err(RegistryError::Transition(e)) => {
            error(StatusCode::CONFLICT, format!("job {id} is {}: there is nothing to cancel", e.from))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn heartbeat(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    match serde_json::from_slice::<Heartbeat>(&body) {
        Ok(beat) if !beat.name.is_empty() && beat.url.starts_with("http://") => {
            let lost = state.agents.heartbeat(&beat.name, beat.url.trim_end_matches('/'), &beat.running);
            super::agents::fail_lost(&state.registry, &beat.name, lost);
            Json(serde_json::json!({ "ok": true })).into_response()
        }
        Ok(_) => error(StatusCode::BAD_REQUEST, "a heartbeat names its agent and its http:// URL"),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("a heartbeat is {{name, url, running}}: {e}")),
    }
}

async fn agents(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    Json(serde_json::json!({ "agents": state.agents.list() })).into_response()
}

/// Lines a job's processes printed: narration lines become `narration` events, the rest
/// `log` events (`{"stream", "line"}`): nothing printed is lost.
async fn lines(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(id) = JobId::parse(&id) else { return no_job(&id) };
    let lines: Lines = match serde_json::from_slice(&body) {
        Ok(lines) => lines,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("lines are {{lines: [{{stream, text}}]}}: {e}")),
    };
    for line in lines.lines {
        let (kind, data) = if is_narration(&line.text) {
            (EventKind::Narration, line.text.trim_end().to_string())
        } else {
            (EventKind::Log, serde_json::json!({ "stream": line.stream, "line": line.text }).to_string())
        };
        match state.registry.append(id, kind, data) {
            Ok(_) => {}
            Err(RegistryError::NotFound(_)) => return no_job(&id.to_string()),
            Err(e) => return error(StatusCode::CONFLICT, e.to_string()),
        }
    }
    Json(serde_json::json!({ "ok": true })).into_response()
}

/// Whether a line is a narration line of a version this coordinator knows.
fn is_narration(line: &str) -> bool {
    line.trim_start().starts_with("{\"narration\":") && Narration::parse(line).is_some()
}

async fn outcome(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(id) = JobId::parse(&id) else { return no_job(&id) };
    let outcome: Outcome = match serde_json::from_slice(&body) {
        Ok(outcome) => outcome,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("an outcome is {{state, reason, exit_code}}: {e}")),
    };
    let to = match outcome.state.as_str() {
        "succeeded" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "cancelled" => JobState::Cancelled,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("state: expected succeeded, failed or cancelled; found {other:?}"),
            );
        }
    };
    state.agents.finished(id);
    match state.registry.transition(id, to, outcome.reason, None) {
        Ok(view) => Json(view).into_response(),
        Err(RegistryError::NotFound(_)) => no_job(&id.to_string()),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// A client following a job's stream.
struct Follow {
    registry: Arc<Registry>,
    id: JobId,
    /// The id of the last event sent.
    last: u64,
    pending: VecDeque<Event>,
    newest: Option<watch::Receiver<u64>>,
    ended: bool,
    stop: watch::Receiver<bool>,
}

async fn events(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(id) = JobId::parse(&id) else { return no_job(&id) };
    if state.registry.view(id).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no job {id}"));
    }
    let last = match headers.get("last-event-id").map(|v| v.to_str().ok().and_then(|t| t.trim().parse::<u64>().ok())) {
        None => 0,
        Some(Some(last)) => last,
        Some(None) => return error(StatusCode::BAD_REQUEST, "Last-Event-ID: expected an event id (a whole number)"),
    };
    let follow = Follow {
        registry: Arc::clone(&state.registry),
        id,
        last,
        pending: VecDeque::new(),
        newest: None,
        ended: false,
        stop: state.stop.clone(),
    };
    let keep_alive = KeepAlive::new().interval(state.settings.keep_alive).text("keep-alive");
    Sse::new(stream_of(follow)).keep_alive(keep_alive).into_response()
}

/// The job's events after `follow.last`, then each new one as it comes, until the terminal
/// event (or the job is removed).
fn stream_of(follow: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(event) = f.pending.pop_front() {
                return Some((Ok(event), f));
            }
            if f.ended {
                return None;
            }
            if *f.stop.borrow() {
                return None;
            }
            if let Some(newest) = f.newest.as_mut() {
                // Woken by each new event (an error: the job was removed), or by the stop.
                tokio::select! {
                    changed = newest.changed() => changed.ok()?,
                    _ = f.stop.changed() => return None,
                }
            }
            let (resume, newest) = f.registry.resume(f.id, f.last).ok()?;
            f.newest = Some(newest);
            if resume.missed > 0 {
                let note = format!(
                    "{} events after {} are no longer kept; resuming at the oldest kept",
                    resume.missed, f.last
                );
                f.pending.push_back(Event::default().comment(note));
            }
            for event in resume.events {
                f.last = event.id;
                f.pending
                    .push_back(Event::default().id(event.id.to_string()).event(event.kind.name()).data(event.data));
            }
            f.ended = resume.ended;
        }
    })
}
