//! `hopline submit`: sends a pipeline config to the coordinator as a job and, with
//! `--follow`, renders the job's event stream as it comes, reconnecting with `Last-Event-ID`
//! if the connection drops, until the terminal event.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use hopline_runtime::narration::{Level, Narration};

use crate::Token;

/// What to submit, and where.
#[derive(Debug)]
pub struct Submit {
    /// The coordinator's base URL.
    pub coordinator: String,
    pub token: Token,
    pub config: PathBuf,
    /// Paths on the agent's host.
    pub input: Option<String>,
    pub output: Option<String>,
    pub correlation_id: Option<String>,
    /// `TRACEPARENT` of the caller, when set: the job joins that trace.
    pub traceparent: Option<String>,
    pub follow: bool,
    /// Colours for a terminal.
    pub color: bool,
}

/// Exit codes of `hopline submit --follow`.
pub mod exit {
    pub const SUCCEEDED: i32 = 0;
    pub const FAILED: i32 = 1;
    /// The request could not be made or was refused.
    pub const REFUSED: i32 = 2;
    pub const CANCELLED: i32 = 3;
}

/// Why a submission could not be made. Never holds the token.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("cannot read the config {path}: {source}")]
    Config { path: String, source: std::io::Error },
    #[error("cannot reach the coordinator at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the coordinator refused the job ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the job's stream broke and could not be resumed: {0}")]
    Stream(String),
}

/// Submits the job; prints its id (without `follow`) or its events (with), and returns the
/// exit code.
pub fn run_blocking(submit: &Submit, out: &mut dyn Write) -> Result<i32, SubmitError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SubmitError::Unreachable { url: submit.coordinator.clone(), message: e.to_string() })?;
    runtime.block_on(run(submit, out))
}

async fn run(submit: &Submit, out: &mut dyn Write) -> Result<i32, SubmitError> {
    let text = std::fs::read_to_string(&submit.config)
        .map_err(|source| SubmitError::Config { path: submit.config.display().to_string(), source })?;
    let name = submit.config.file_name().and_then(|n| n.to_str()).unwrap_or("config.yml").to_string();
    let body =
        serde_json::json!({ "config_name": name, "config": text, "input": submit.input, "output": submit.output });
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| SubmitError::Unreachable { url: submit.coordinator.clone(), message: e.to_string() })?;
    let unreachable =
        |e: reqwest::Error| SubmitError::Unreachable { url: submit.coordinator.clone(), message: e.to_string() };
    let mut post = client
        .post(format!("{}/v1/jobs", submit.coordinator))
        .header("authorization", submit.token.header_value().as_str())
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(30))
        .body(body.to_string());
    if let Some(id) = &submit.correlation_id {
        post = post.header("x-correlation-id", id);
    }
    if let Some(traceparent) = &submit.traceparent {
        post = post.header("traceparent", traceparent);
    }
    let response = post.send().await.map_err(unreachable)?;
    let status = response.status();
    let answer: serde_json::Value =
        serde_json::from_str(&response.text().await.map_err(unreachable)?).unwrap_or_default();
    if status.as_u16() != 201 {
        let message = answer["error"].as_str().unwrap_or("no reason given").to_string();
        return Err(SubmitError::Refused { status: status.as_u16(), message });
    }
    let id = answer["id"].as_str().unwrap_or_default().to_string();
    if !submit.follow {
        let _ = writeln!(out, "{id}");
        return Ok(exit::SUCCEEDED);
    }
    let mut render = Render { out, color: submit.color };
    render.line(&format!("job {id} submitted (correlation id {})", answer["correlation_id"].as_str().unwrap_or("")));
    follow(&client, &format!("{}/v1/jobs/{id}/events", submit.coordinator), &mut render).await
}

/// Follows the stream to its terminal event, resuming after the last event seen when the
/// connection drops (five tries in a row, a second apart).
async fn follow(client: &reqwest::Client, url: &str, render: &mut Render<'_>) -> Result<i32, SubmitError> {
    let mut last: Option<u64> = None;
    let mut failures = 0;
    loop {
        let mut request = client.get(url);
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        let outcome = match request.send().await {
            Ok(response) if response.status().is_success() => read_stream(response, &mut last, render).await,
            Ok(response) => Err(format!("the coordinator answered {}", response.status())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(Some(code)) => return Ok(code),
            Ok(None) => failures = 0, // the stream ended without its terminal event: resume
            Err(why) => {
                failures += 1;
                if failures >= 5 {
                    return Err(SubmitError::Stream(why));
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How long a followed stream may stay silent (keep-alive comments included) before the
/// connection is taken for dead.
const SILENCE: Duration = Duration::from_secs(60);

/// Reads one connection's events; `Some(exit code)` after the terminal event.
async fn read_stream(
    mut response: reqwest::Response,
    last: &mut Option<u64>,
    render: &mut Render<'_>,
) -> Result<Option<i32>, String> {
    // Bytes until a whole line is in: a character split between chunks stays whole.
    let mut pending: Vec<u8> = Vec::new();
    let (mut id, mut name, mut data) = (None::<u64>, String::new(), String::new());
    loop {
        // A live stream sends at least a comment every few seconds; a minute of silence
        // means the connection is dead: resume on a new one.
        let chunk = match tokio::time::timeout(SILENCE, response.chunk()).await {
            Ok(chunk) => chunk.map_err(|e| e.to_string())?,
            Err(_) => return Err(format!("nothing from the coordinator for {} s", SILENCE.as_secs())),
        };
        let Some(chunk) = chunk else { return Ok(None) };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !name.is_empty() {
                    if let Some(id) = id.take() {
                        *last = Some(id);
                    }
                    if let Some(code) = render.event(&name, &data) {
                        return Ok(Some(code));
                    }
                }
                name.clear();
                data.clear();
            } else if let Some(value) = line.strip_prefix("id:") {
                id = value.trim().parse().ok();
            } else if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_string();
            } else if let Some(value) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
    }
}

/// Renders events for a person: plain lines, coloured by level on a terminal.
struct Render<'a> {
    out: &'a mut dyn Write,
    color: bool,
}

impl Render<'_> {
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\u{1b}[{code}m{text}\u{1b}[0m") } else { text.to_string() }
    }

    /// Renders one event; the exit code after a terminal one.
    fn event(&mut self, name: &str, data: &str) -> Option<i32> {
        let value: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        match name {
            "narration" => {
                let Some(n) = Narration::parse(data) else {
                    self.line(data);
                    return None;
                };
                let actor = n.actor.group.as_deref().unwrap_or(&n.actor.process);
                let time = n.time.get(11..23).unwrap_or("");
                let text = format!("{time} {actor:>10}  {}", n.message);
                let text = match n.level {
                    Level::Error => self.paint("31", &text),
                    Level::Warn => self.paint("33", &text),
                    Level::Debug => self.paint("2", &text),
                    Level::Info => text,
                };
                self.line(&text);
                None
            }
            "log" => {
                let text = format!(
                    "{:>23}  | {}",
                    value["stream"].as_str().unwrap_or(""),
                    value["line"].as_str().unwrap_or("")
                );
                let text = self.paint("2", &text);
                self.line(&text);
                None
            }
            "state" => {
                let mut text = format!("job {}", value["state"].as_str().unwrap_or("?"));
                if let Some(agent) = value["agent"].as_str() {
                    text.push_str(&format!(" on agent {agent}"));
                }
                self.line(&text);
                None
            }
            "succeeded" => {
                let text = self.paint("32", "job succeeded");
                self.line(&text);
                Some(exit::SUCCEEDED)
            }
            "failed" => {
                let text = format!("job failed: {}", value["reason"].as_str().unwrap_or("no reason given"));
                let text = self.paint("31", &text);
                self.line(&text);
                Some(exit::FAILED)
            }
            "cancelled" => {
                let text = format!("job cancelled: {}", value["reason"].as_str().unwrap_or(""));
                let text = self.paint("33", &text);
                self.line(&text);
                Some(exit::CANCELLED)
            }
            _ => None,
        }
    }
}
