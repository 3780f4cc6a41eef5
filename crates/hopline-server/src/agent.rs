//! The agent: runs the coordinator's jobs on this host, each as a `hopline run --narrate`
//! child (which starts its own workers), and reports back every line they print and how the
//! run ended.
//!
//! | method and path | what it does | token |
//! | --- | --- | --- |
//! | `POST /v1/runs` | starts a job ([`crate::wire::RunRequest`]); `202` | yes |
//! | `POST /v1/runs/{id}/cancel` | stops a job's run: SIGTERM (the run drains), SIGKILL after `stop_grace` | yes |
//! | `GET /v1/health` | the agent's name and how many jobs it runs | no |
//!
//! - The config is written to the job's own folder, so its relative paths are taken from
//!   there: jobs give their input and output as paths on this host (`--input`, `--output` of
//!   `hopline submit`), or use absolute paths in the config.
//! - The run gets `HOPLINE_JOB_ID`, `CORRELATION_ID` and, when the job has one,
//!   `TRACEPARENT`; the agent passes `--correlation-id` too, so every narration line and span
//!   carries the job's correlation id.
//! - Lines go to the coordinator in order, a batch every 100 ms at most; the outcome goes
//!   after the last line: `succeeded` (exit 0), `cancelled` (stopped on request), or `failed`
//!   with the run's own `run.failed` narration as the reason (else its last stderr line).
//! - Heartbeats (`POST /v1/agents`) go every `heartbeat`, naming the jobs running.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use hopline_model::trace::SpanKind;
use hopline_runtime::narration::Narration;
use hopline_runtime::tracing::{OpenSpan, ServiceTracer};

use crate::Token;
use crate::wire::{Heartbeat, Line, Lines, Outcome, RunRequest};

/// How an agent behaves.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The coordinator's base URL (`http://host:port`).
    pub coordinator: String,
    pub token: Token,
    /// How the agent names itself to the coordinator.
    pub name: String,
    /// The URL the coordinator reaches this agent at; from the bound address when `None`.
    pub advertise: Option<String>,
    pub heartbeat: Duration,
    /// The `hopline` program that runs jobs.
    pub program: PathBuf,
    /// Where the agent makes its own folder (private, fresh, removed at exit) for jobs' folders.
    pub work_root: PathBuf,
    /// How long a stopped run has to drain before it is killed.
    pub stop_grace: Duration,
}

impl AgentSettings {
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
    pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
}

/// A run in progress.
struct Running {
    pid: Option<u32>,
    cancel_requested: bool,
}

#[derive(Clone)]
struct AgentState {
    settings: Arc<AgentSettings>,
    client: reqwest::Client,
    runs: Arc<Mutex<HashMap<String, Running>>>,
    /// Jobs cancelled before their run arrived: a late `POST /v1/runs` for one is refused.
    cancelled: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Lines dropped because the coordinator did not keep up (the run is never held up).
    dropped: Arc<std::sync::atomic::AtomicU64>,
    /// The agent's own spans: one per job, the child of the coordinator's and the parent of
    /// the run's.
    tracer: Option<Arc<ServiceTracer>>,
}

impl AgentState {
    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs an agent on `listen` until SIGINT or SIGTERM, calling `on_listening` with the bound
/// address once it takes requests.
pub fn run_blocking(
    listen: &str,
    settings: AgentSettings,
    tracer: Option<ServiceTracer>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let tracer = tracer.map(Arc::new);
    let serving = tracer.clone();
    let mut settings = settings;
    settings.work_root = private_folder(&settings.work_root)?;
    let work_folder = Some(settings.work_root.clone());
    let result = runtime.block_on(async move {
        let tracer = serving;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(std::io::Error::other)?;
        let url = settings.advertise.clone().unwrap_or_else(|| format!("http://{addr}"));
        let state = AgentState {
            settings: Arc::new(settings),
            client,
            runs: Arc::new(Mutex::new(HashMap::new())),
            cancelled: Arc::new(Mutex::new(std::collections::HashSet::new())),
            dropped: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            tracer,
        };
        tokio::spawn(heartbeats(state.clone(), url));
        on_listening(addr);
        let app = Router::new()
            .route("/v1/runs", post(start))
            .route("/v1/runs/{id}/cancel", post(cancel))
            .route("/v1/health", axum::routing::get(health))
            .layer(axum::extract::DefaultBodyLimit::max(4 << 20))
            .with_state(state);
        axum::serve(listener, app).with_graceful_shutdown(crate::coordinator::stop_signal()).await
    });
    if let Some(folder) = &work_folder {
        let _ = std::fs::remove_dir_all(folder);
    }
    drop(runtime);
    if let Some(tracer) = tracer.and_then(|t| Arc::try_unwrap(t).ok()) {
        tracer.finish();
    }
    result
}

async fn heartbeats(state: AgentState, url: String) {
    let mut tick = tokio::time::interval(state.settings.heartbeat);
    loop {
        tick.tick().await;
        let running: Vec<String> = state.runs().keys().cloned().collect();
        let beat = Heartbeat { name: state.settings.name.clone(), url: url.clone(), running };
        // A coordinator that is down misses heartbeats; the next one goes anyway.
        let _ = post_to_coordinator(&state, "/v1/agents", serde_json::to_string(&beat).unwrap_or_default()).await;
    }
}

/// POSTs a JSON body to the coordinator at `path`, with the token.
async fn post_to_coordinator(state: &AgentState, path: &str, body: String) -> reqwest::Result<reqwest::Response> {
    state
        .client
        .post(format!("{}{path}", state.settings.coordinator))
        .header("authorization", state.settings.token.header_value().as_str())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
}

/// `GET /v1/health`: alive, and how many jobs it runs (a coordinator that knows this agent
/// from its configuration asks).
async fn health(State(state): State<AgentState>) -> Response {
    let jobs: Vec<String> = state.runs().keys().cloned().collect();
    axum::Json(serde_json::json!({ "name": state.settings.name, "running": jobs.len(), "running_jobs": jobs }))
        .into_response()
}

/// A fresh folder only this user can enter, under `root`: made anew (an existing path is
/// never reused, so nobody can prepare it), mode 0700.
fn private_folder(root: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::create_dir_all(root)?;
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let folder = root.join(format!("hopline-agent-{}-{:016x}", std::process::id(), u64::from_be_bytes(bytes)));
    std::fs::DirBuilder::new().mode(0o700).create(&folder)?;
    Ok(folder)
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn authorized(state: &AgentState, headers: &HeaderMap) -> bool {
    state.settings.token.admits(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
}

async fn start(State(state): State<AgentState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return refuse(StatusCode::UNAUTHORIZED, "this request needs the coordinator's bearer token");
    }
    let request: RunRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("a run request: {e}")),
    };
    if hopline_jobs::JobId::parse(&request.job).is_none() {
        return refuse(StatusCode::BAD_REQUEST, "job: expected a job id (32 hex digits)");
    }
    if state.cancelled.lock().unwrap_or_else(|p| p.into_inner()).remove(&request.job) {
        return refuse(StatusCode::CONFLICT, format!("job {} was cancelled before it arrived", request.job));
    }
    {
        let mut runs = state.runs();
        if runs.contains_key(&request.job) {
            return refuse(StatusCode::CONFLICT, format!("job {} is already running here", request.job));
        }
        runs.insert(request.job.clone(), Running { pid: None, cancel_requested: false });
    }
    tokio::spawn(run_job(state, request));
    (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "ok": true }))).into_response()
}

async fn cancel(State(state): State<AgentState>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if !authorized(&state, &headers) {
        return refuse(StatusCode::UNAUTHORIZED, "this request needs the coordinator's bearer token");
    }
    let known = state.runs().contains_key(&id);
    if !known {
        // Not here yet (or already over): remembered, so a run arriving late is refused.
        state.cancelled.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone());
        return refuse(StatusCode::NOT_FOUND, format!("job {id} is not running here"));
    }
    stop_run(&state, &id);
    (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "ok": true }))).into_response()
}

/// Marks the job's run cancelled and stops it: SIGTERM now (the run drains), SIGKILL if it
/// is still the same run after `stop_grace`. A run without a pid yet is stopped as it starts.
fn stop_run(state: &AgentState, id: &str) {
    let pid = {
        let mut runs = state.runs();
        let Some(run) = runs.get_mut(id) else { return };
        run.cancel_requested = true;
        run.pid
    };
    if let Some(pid) = pid {
        signal(pid, libc::SIGTERM);
        kill_after_grace(state, id, pid);
    }
}

/// SIGKILL for the run `pid` of job `id` if it is still running after the grace (the pid is
/// cleared as soon as the run is reaped, so a reused pid is never signalled).
fn kill_after_grace(state: &AgentState, id: &str, pid: u32) {
    let (grace, runs, id) = (state.settings.stop_grace, Arc::clone(&state.runs), id.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let runs = runs.lock().unwrap_or_else(|p| p.into_inner());
        if runs.get(&id).and_then(|r| r.pid) == Some(pid) {
            signal(pid, libc::SIGKILL);
        }
    });
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on the pid of a child this agent started and has not reaped (the run's
    // entry holds its pid until it is reaped); no memory is involved.
    unsafe { libc::kill(pid as i32, signal) };
}

/// The job's config file name: the last part of what the client named, or `config.yml`.
fn config_file_name(name: &str) -> String {
    let base = Path::new(name).file_name().and_then(|n| n.to_str()).unwrap_or("");
    let clean: String = base.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect();
    if clean.is_empty() || clean.starts_with('.') { "config.yml".into() } else { clean }
}

async fn run_job(state: AgentState, mut request: RunRequest) {
    let job = request.job.clone();
    // The agent's span continues the coordinator's; the run continues the agent's.
    let span = state.tracer.as_ref().map(|_| {
        OpenSpan::begin(
            SpanKind::Job,
            request.traceparent.as_deref().and_then(hopline_model::TraceContext::parse_traceparent),
        )
    });
    if let Some(span) = &span {
        request.traceparent = Some(span.context.to_string());
    }
    let (lines_tx, lines_rx) = mpsc::channel::<Line>(LINE_QUEUE);
    let sender = tokio::spawn(send_lines(state.clone(), job.clone(), lines_rx));
    let result = run_child(&state, &request, lines_tx).await;
    let _ = sender.await;
    let cancel_requested = state.runs().remove(&job).is_some_and(|r| r.cancel_requested);
    let outcome = match result {
        Err(why) => Outcome { state: "failed".into(), reason: Some(why), exit_code: None },
        Ok(end) if cancel_requested => Outcome {
            state: "cancelled".into(),
            reason: Some(format!("cancelled by the client; the run stopped ({})", end.described())),
            exit_code: end.code,
        },
        Ok(end) if end.code == Some(0) => Outcome { state: "succeeded".into(), reason: None, exit_code: Some(0) },
        Ok(end) => {
            let reason = end.failure.clone().unwrap_or_else(|| format!("the run ended: {}", end.described()));
            Outcome { state: "failed".into(), reason: Some(reason), exit_code: end.code }
        }
    };
    let _ = std::fs::remove_dir_all(state.settings.work_root.join(&job));
    if let (Some(tracer), Some(span)) = (&state.tracer, &span) {
        let correlation_id = hopline_model::CorrelationId::parse(&request.correlation_id).unwrap_or_default();
        let failure = (outcome.state != "succeeded")
            .then(|| format!("{}: {}", outcome.state, outcome.reason.clone().unwrap_or_default()));
        tracer.record(span.end(correlation_id, failure));
    }
    let body = serde_json::to_string(&outcome).unwrap_or_default();
    for _ in 0..5 {
        let sent = post_to_coordinator(&state, &format!("/v1/jobs/{job}/outcome"), body.clone()).await;
        if sent.is_ok_and(|r| r.status().is_success() || r.status().is_client_error()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The next line of a run's output, lossily decoded (a byte that is not UTF-8 never stops
/// the reading), at most [`MAX_LINE_BYTES`] kept of it; `None` at the end.
async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Option<String> {
    let mut line = Vec::new();
    let mut cut = 0usize;
    loop {
        let available = match reader.fill_buf().await {
            Ok(available) => available,
            Err(_) => return None,
        };
        if available.is_empty() {
            return (!line.is_empty() || cut > 0).then(|| finish_line(line, cut));
        }
        let (chunk, ends) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], at + 1),
            None => (available, available.len()),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        cut += chunk.len().saturating_sub(room);
        let complete = ends > chunk.len();
        reader.consume(ends);
        if complete {
            return Some(finish_line(line, cut));
        }
    }
}

fn finish_line(line: Vec<u8>, cut: usize) -> String {
    let mut text = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
    if cut > 0 {
        text.push_str(&format!(" [{cut} more bytes cut by the agent]"));
    }
    text
}

/// Hands a line to the sender without ever waiting: when the coordinator does not keep up,
/// the line is dropped and counted (the run's pipes never fill because of it).
fn hand_on(lines: &mpsc::Sender<Line>, line: Line, dropped: &std::sync::atomic::AtomicU64) {
    if lines.try_send(line).is_err() {
        dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How a run ended.
struct End {
    code: Option<i32>,
    signal: Option<i32>,
    /// The run's own account of its failure (its `run.failed` narration), else its last
    /// stderr line.
    failure: Option<String>,
}

impl End {
    fn described(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "no exit status".into(),
        }
    }
}

async fn run_child(state: &AgentState, request: &RunRequest, lines: mpsc::Sender<Line>) -> Result<End, String> {
    let dir = state.settings.work_root.join(&request.job);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make the job's folder {}: {e}", dir.display()))?;
    let config = dir.join(config_file_name(&request.config_name));
    std::fs::write(&config, &request.config).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let mut command = tokio::process::Command::new(&state.settings.program);
    command.arg("run").arg(&config).arg("--narrate").args(["--correlation-id", &request.correlation_id]);
    if let Some(input) = &request.input {
        command.args(["--input", input]);
    }
    if let Some(output) = &request.output {
        command.args(["--output", output]);
    }
    command
        // The shared token is the agent's, never the run's.
        .env_remove("HOPLINE_TOKEN")
        .env("HOPLINE_JOB_ID", &request.job)
        .env("CORRELATION_ID", &request.correlation_id)
        .env_remove("TRACEPARENT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(traceparent) = &request.traceparent {
        command.env("TRACEPARENT", traceparent);
    }
    // A run never outlives its agent: if the agent dies, the run is told to stop (it drains).
    // SAFETY: prctl(2) with constant arguments between fork and exec; it touches no memory
    // of the parent and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0);
            Ok(())
        });
    }
    let mut child =
        command.spawn().map_err(|e| format!("cannot start {} run: {e}", state.settings.program.display()))?;
    let cancelled_early = {
        let mut runs = state.runs();
        runs.get_mut(&request.job).is_some_and(|run| {
            run.pid = child.id();
            run.cancel_requested
        })
    };
    if cancelled_early {
        if let Some(pid) = child.id() {
            signal(pid, libc::SIGTERM);
            kill_after_grace(state, &request.job, pid);
        }
    }
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    let stderr = BufReader::new(child.stderr.take().expect("piped"));
    let failure = Arc::new(Mutex::new((None::<String>, None::<String>)));
    let out_failure = Arc::clone(&failure);
    let out_lines = lines.clone();
    let dropped = Arc::clone(&state.dropped);
    let out_dropped = Arc::clone(&dropped);
    let reading_out = tokio::spawn(async move {
        let mut stdout = stdout;
        while let Some(text) = next_line(&mut stdout).await {
            if let Some(failed) = Narration::parse(&text).filter(|n| n.action == "run.failed") {
                out_failure.lock().unwrap_or_else(|p| p.into_inner()).0 = Some(failed.message);
            }
            hand_on(&out_lines, Line { stream: "stdout".into(), text }, &out_dropped);
        }
    });
    let err_failure = Arc::clone(&failure);
    let reading_err = tokio::spawn(async move {
        let mut stderr = stderr;
        while let Some(text) = next_line(&mut stderr).await {
            if !text.trim().is_empty() {
                err_failure.lock().unwrap_or_else(|p| p.into_inner()).1 = Some(text.clone());
            }
            hand_on(&lines, Line { stream: "stderr".into(), text }, &dropped);
        }
    });
    let status = child.wait().await;
    // Reaped: the pid may be reused from now on, so nothing signals it any more.
    if let Some(run) = state.runs().get_mut(&request.job) {
        run.pid = None;
    }
    let status = status.map_err(|e| format!("cannot wait for the run: {e}"))?;
    let _ = reading_out.await;
    let _ = reading_err.await;
    use std::os::unix::process::ExitStatusExt;
    let (narrated, last_stderr) = failure.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(End { code: status.code(), signal: status.signal(), failure: narrated.or(last_stderr) })
}

/// Lines waiting for the coordinator, at most (then lines are dropped and counted).
const LINE_QUEUE: usize = 8192;

/// The most one batch of lines holds, in bytes: well under the coordinator's body limit.
const BATCH_BYTES: usize = 256 << 10;

/// The longest line sent whole; longer ones are cut, and say so.
const MAX_LINE_BYTES: usize = 64 << 10;

/// `line` cut to [`MAX_LINE_BYTES`] at a character boundary, marked.
fn bounded(mut line: Line) -> Line {
    if line.text.len() > MAX_LINE_BYTES {
        let mut cut = MAX_LINE_BYTES;
        while !line.text.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = line.text.len() - cut;
        line.text.truncate(cut);
        line.text.push_str(&format!(" [{dropped} more bytes cut by the agent]"));
    }
    line
}

/// Sends the run's lines to the coordinator in order: whatever has arrived, every 100 ms at
/// most and [`BATCH_BYTES`] at a time, until the run's output ends.
async fn send_lines(state: AgentState, job: String, mut lines: mpsc::Receiver<Line>) {
    let mut batch: Vec<Line> = Vec::new();
    let mut bytes = 0;
    let mut open = true;
    while open {
        match tokio::time::timeout(Duration::from_millis(100), lines.recv()).await {
            Ok(Some(line)) => {
                let line = bounded(line);
                bytes += line.text.len();
                batch.push(line);
                while bytes < BATCH_BYTES {
                    match lines.try_recv() {
                        Ok(line) => {
                            let line = bounded(line);
                            bytes += line.text.len();
                            batch.push(line);
                        }
                        Err(_) => break,
                    }
                }
            }
            Ok(None) => open = false,
            Err(_) => {}
        }
        let dropped = state.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            let text =
                format!("[agent: {dropped} lines of this host's runs were dropped: the coordinator did not keep up]");
            batch.push(Line { stream: "agent".into(), text });
        }
        if batch.is_empty() {
            continue;
        }
        let body = serde_json::to_string(&Lines { lines: std::mem::take(&mut batch) }).unwrap_or_default();
        bytes = 0;
        for _ in 0..3 {
            let sent = post_to_coordinator(&state, &format!("/v1/jobs/{job}/lines"), body.clone()).await;
            match sent {
                // The job is over at the coordinator (cancelled, or failed while its run went
                // on): nobody wants this run any more.
                Ok(r) if r.status() == StatusCode::CONFLICT => {
                    stop_run(&state, &job);
                    break;
                }
                Ok(r) if r.status().is_success() || r.status().is_client_error() => break,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_names_stay_inside_the_job_folder() {
        assert_eq!(config_file_name("pipelines/fund_load/baseline.yml"), "baseline.yml");
        assert_eq!(config_file_name("../../etc/passwd"), "passwd");
        assert_eq!(config_file_name(".."), "config.yml");
        assert_eq!(config_file_name(""), "config.yml");
        assert_eq!(config_file_name("a b$(x).yml"), "abx.yml");
    }

    #[test]
    fn a_huge_line_is_cut_and_says_so() {
        let line = bounded(Line { stream: "stderr".into(), text: "é".repeat(MAX_LINE_BYTES) });
        assert!(line.text.len() < MAX_LINE_BYTES + 64);
        assert!(line.text.ends_with("more bytes cut by the agent]"), "{}", &line.text[line.text.len() - 50..]);
        let short = bounded(Line { stream: "stdout".into(), text: "ok".into() });
        assert_eq!(short.text, "ok");
    }

    #[tokio::test]
    async fn output_lines_are_read_lossily_and_bounded_to_the_end() {
        let mut bytes = b"first\r\nnot utf-8: \xff\xfe\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'z', MAX_LINE_BYTES + 10));
        bytes.extend_from_slice(b"\nlast without newline");
        let mut reader = BufReader::with_capacity(1000, bytes.as_slice());
        assert_eq!(next_line(&mut reader).await.as_deref(), Some("first"));
        assert_eq!(next_line(&mut reader).await.as_deref(), Some("not utf-8: \u{fffd}\u{fffd}"));
        let long = next_line(&mut reader).await.unwrap();
        assert!(long.starts_with("zzz") && long.ends_with(" [10 more bytes cut by the agent]"));
        assert_eq!(next_line(&mut reader).await.as_deref(), Some("last without newline"));
        assert_eq!(next_line(&mut reader).await, None);
    }
}
