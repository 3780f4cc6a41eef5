//! Actions: what an observer does with a change it matched.
//!
//! - `webhook`: POST a JSON body to a URL, with `traceparent` (the attempt's span, so the
//!   receiver's spans join the change's trace), `Idempotency-Key` (the change's event id, the
//!   same on every attempt, retry and restart) and, with a signing secret,
//!   `X-Hopline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. A 2xx answer
//!   delivers it. 408, 429, 5xx, a timeout and a connection failure are tried again after a
//!   growing, jittered wait (a `Retry-After` of seconds is honoured, up to `max_backoff`); any
//!   other answer (another 4xx, a redirect) cannot succeed and gives up at once. An action that
//!   gives up becomes a [`DeadLetter`].
//! - `log`: a templated line on standard error (the run's log).

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::config::{ActionSpec, HeaderSpec, RetrySpec, WebhookSpec};
use crate::message::Change;
use crate::template::{BodyTemplate, Scope, Template};

/// One action of one observer, ready to run.
#[derive(Debug)]
pub struct Action {
    /// Its name within its observer (`webhook`, `log`, or the `name:` given).
    pub name: String,
    pub kind: ActionKind,
}

#[derive(Debug)]
pub enum ActionKind {
    Webhook(Box<Webhook>),
    Log(Template),
}

/// A webhook, its strings expanded and checked.
pub struct Webhook {
    /// As written, for the dead-letter queue (references unexpanded).
    pub spec: WebhookSpec,
    pub url: crate::http::Url,
    /// Extra headers, checked: a token for a name, no control characters in a value.
    pub headers: Vec<(String, String)>,
    pub secret: Option<Secret>,
    pub timeout: Duration,
    pub body: Option<BodyTemplate>,
    pub retry: RetrySpec,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.spec.url)
            .field("headers", &self.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A signing secret: never shown.
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret, not shown>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl Action {
    /// Builds an action from its spec; `Err((key, message))` names the key that is wrong.
    pub fn build(spec: &ActionSpec, name: String) -> Result<Action, (String, String)> {
        let kind = match spec {
            ActionSpec::Log(log) => {
                ActionKind::Log(Template::parse(&log.message).map_err(|m| ("log.message".to_string(), m))?)
            }
            ActionSpec::Webhook(spec) => {
                ActionKind::Webhook(Box::new(Webhook::build(spec).map_err(|(k, m)| (format!("webhook.{k}"), m))?))
            }
        };
        Ok(Action { name, kind })
    }
}

impl Webhook {
    pub fn build(spec: &WebhookSpec) -> Result<Webhook, (&'static str, String)> {
        let url = parse_url(spec.url.value()).map_err(|m| ("url", m))?;
        let headers = headers(&spec.headers, &|h| h.value.value().to_string()).map_err(|m| ("headers", m))?;
        let secret = match &spec.secret {
            None => None,
            Some(secret) if !secret.is_one_reference() => {
                return Err((
                    "secret",
                    "expected a `${NAME}` reference to an environment variable: a secret is never written in a config"
                        .into(),
                ));
            }
            Some(secret) if secret.value().is_empty() => {
                return Err(("secret", format!("the variable {} is empty", secret.written())));
            }
            Some(secret) => Some(Secret(secret.value().as_bytes().to_vec())),
        };
        let body = match &spec.body {
            Some(body) => Some(BodyTemplate::parse(body).map_err(|m| ("body", m))?),
            None => None,
        };
        spec.retry.check()?;
        Ok(Webhook { spec: spec.clone(), url, headers, secret, timeout: spec.timeout.0, body, retry: spec.retry })
    }

    /// The request body for a change, as it is sent on every attempt.
    pub fn body(&self, scope: &Scope<'_>) -> Vec<u8> {
        match &self.body {
            Some(template) => template.render(scope).into_bytes(),
            None => standard_body(scope),
        }
    }

    /// The receiver as errors and logs show it: scheme, host and port only.
    pub fn shown_url(&self) -> String {
        shown_url(&self.url)
    }
}

fn parse_url(text: &str) -> Result<crate::http::Url, String> {
    let scheme = text.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme.to_ascii_lowercase().as_str() {
        "http" => crate::http::Url::parse(text).map_err(|e| format!("expected an http:// URL: {e}")),
        "https" => Err("https webhooks need a TLS build of hopline, which this is not yet; use http:// (for example \
                        through a local TLS-terminating proxy)"
            .into()),
        "" => Err("expected an http:// URL".into()),
        other => Err(format!("expected an http:// URL; found the scheme `{other}`")),
    }
}

fn headers(specs: &[HeaderSpec], value: &dyn Fn(&HeaderSpec) -> String) -> Result<Vec<(String, String)>, String> {
    const OURS: [&str; 8] = [
        "content-type",
        "idempotency-key",
        "traceparent",
        "x-hopline-signature",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
    ];
    specs
        .iter()
        .map(|h| {
            let name = h.name.to_ascii_lowercase();
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                return Err(format!("`{}` is not a valid header name", h.name));
            }
            if OURS.contains(&name.as_str()) {
                return Err(format!("`{}` is set by hopline and cannot be configured", h.name));
            }
            let value = value(h);
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(format!("the value of header `{}` holds a control character", h.name));
            }
            Ok((name, value))
        })
        .collect()
}

/// `http://host[:port]`: the receiver, without its path or query, which often hold a token
/// (`/hooks/T0123/B456/s3cr3t`): what errors, logs, spans and the dead-letter queue show.
pub fn shown_url(url: &crate::http::Url) -> String {
    let host = url.host();
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    match url.port() {
        80 => format!("http://{host}"),
        port => format!("http://{host}:{port}"),
    }
}

/// `{"event_id", "table", "op", "key", "before", "after", "committed_at"}`, the row images as
/// PostgreSQL wrote them.
pub fn standard_body(scope: &Scope<'_>) -> Vec<u8> {
    let c = scope.change;
    let mut out = Vec::with_capacity(
        128 + c.key.get().len()
            + c.before.as_ref().map_or(4, |b| b.get().len())
            + c.after.as_ref().map_or(4, |a| a.get().len()),
    );
    out.extend_from_slice(b"{\"event_id\":");
    serde_json::to_writer(&mut out, scope.event_id).expect("writes to a Vec");
    out.extend_from_slice(b",\"table\":");
    serde_json::to_writer(&mut out, &c.table.qualified()).expect("writes to a Vec");
    out.extend_from_slice(b",\"op\":\"");
    out.extend_from_slice(c.op.name().as_bytes());
    out.extend_from_slice(b"\",\"key\":");
    out.extend_from_slice(c.key.get().as_bytes());
    out.extend_from_slice(b",\"before\":");
    out.extend_from_slice(c.before.as_ref().map_or("null", |b| b.get()).as_bytes());
    out.extend_from_slice(b",\"after\":");
    out.extend_from_slice(c.after.as_ref().map_or("null", |a| a.get()).as_bytes());
    out.extend_from_slice(b",\"committed_at\":");
    serde_json::to_writer(&mut out, &c.committed_at).expect("writes to a Vec");
    out.push(b'}');
    out
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &[u8], unix_seconds: u64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = format!("t={unix_seconds},v1=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// Worth another try (408, 429, 5xx, timeout, connection), after at least `retry_after`.
    Retry { status: Option<u16>, error: String, retry_after: Option<Duration> },
    /// Cannot succeed (another 4xx, a redirect).
    GiveUp { status: u16, error: String },
}

impl Attempt {
    pub fn status(&self) -> Option<u16> {
        match self {
            Attempt::Delivered { status } | Attempt::GiveUp { status, .. } => Some(*status),
            Attempt::Retry { status, .. } => *status,
        }
    }
}

/// Sends one attempt.
pub async fn send(
    client: &crate::http::Client,
    webhook: &Webhook,
    body: &[u8],
    event_id: &str,
    traceparent: &str,
) -> Attempt {
    let signed = webhook.secret.as_ref().map(|secret| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        signature(&secret.0, now, body)
    });
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(4 + webhook.headers.len());
    headers.push(("content-type", "application/json"));
    headers.push(("idempotency-key", event_id));
    headers.push(("traceparent", traceparent));
    if let Some(signed) = &signed {
        headers.push(("x-hopline-signature", signed));
    }
    headers.extend(webhook.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let response = match client.post(&webhook.url, &headers, body, webhook.timeout, ANSWER_READ).await {
        Ok(response) => response,
        Err(e) => return Attempt::Retry { status: None, error: describe(&e, webhook), retry_after: None },
    };
    let status = response.status;
    let retry_after =
        response.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
    let said = || {
        let text = clean(String::from_utf8_lossy(&response.body).trim(), ANSWER_CHARS);
        if text.is_empty() { String::new() } else { format!(": {text}") }
    };
    match status {
        200..=299 => Attempt::Delivered { status },
        408 | 429 | 500..=599 => {
            Attempt::Retry { status: Some(status), error: format!("answered {status}{}", said()), retry_after }
        }
        300..=399 => Attempt::GiveUp { status, error: format!("answered {status} (redirects are not followed)") },
        _ => Attempt::GiveUp { status, error: format!("answered {status}{}", said()) },
    }
}

/// How much of an answer's body is kept: enough for the message, and a receiver that answers
/// with megabytes (or never stops) costs no memory (the client drops such a connection rather
/// than read it all).
const ANSWER_READ: usize = 4096;

/// How much of an answer's body an error quotes.
const ANSWER_CHARS: usize = 200;

/// The longest error text [`send`] returns (and the dead-letter queue stores).
pub const ERROR_CHARS: usize = 500;

/// `text` fit for an error message that is stored and shown: a line break or tab becomes a
/// space (a log line stays one line) and any other control character `\u{FFFD}` (PostgreSQL's
/// `text` refuses NUL, and a checkpoint's transaction would fail on a receiver's binary
/// answer); longer than `max_chars` characters, it is cut to `max_chars` ending in `…`.
pub fn clean(text: &str, max_chars: usize) -> String {
    let cleaned = |c: char| match c {
        c if c.is_control() && c.is_whitespace() => ' ',
        '\u{2028}' | '\u{2029}' => ' ',
        c if c.is_control() => '\u{FFFD}',
        c => c,
    };
    if text.chars().nth(max_chars).is_none() {
        return text.chars().map(cleaned).collect();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).map(cleaned).collect();
    if max_chars > 0 {
        out.push('…');
    }
    out
}

/// A transport error, naming the receiver as [`shown_url`] does (no path, no query).
fn describe(e: &crate::http::Error, webhook: &Webhook) -> String {
    let text = if e.is_timeout() {
        format!("no answer within {} ms from {}", webhook.timeout.as_millis(), webhook.shown_url())
    } else {
        format!("{} ({})", e, webhook.shown_url())
    };
    clean(&text, ERROR_CHARS)
}

/// The wait before attempt `attempt + 1`, jittered; `None` when the policy has given up.
pub fn next_wait(
    retry: &RetrySpec,
    attempt: u32,
    first_started: Instant,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    if attempt >= retry.attempts {
        return None;
    }
    let mut wait = retry.wait_after(attempt);
    if retry.jitter > 0.0 {
        wait = wait.mul_f64(1.0 - retry.jitter * unit_random());
    }
    if let Some(asked) = retry_after {
        wait = wait.max(asked.min(retry.max_backoff.0));
    }
    if let Some(limit) = retry.give_up_after {
        if first_started.elapsed() + wait > limit.0 {
            return None;
        }
    }
    Some(wait)
}

/// A random number in `[0, 1)`.
fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// An action that gave up, as the dead-letter queue keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub event_id: String,
    pub observer: String,
    pub action: String,
    pub attempts: u32,
    pub last_error: String,
    /// What `dlq retry` needs to send it again: the webhook as written (variables unexpanded,
    /// the secret as its reference) and the exact body.
    pub request: Value,
}

impl Webhook {
    /// What the dead-letter queue keeps to send this request again.
    pub fn stored_request(&self, body: &[u8], traceparent: &str) -> Value {
        let spec = &self.spec;
        json!({
            "url": spec.url.written(),
            "headers": spec.headers.iter().map(|h| json!({"name": h.name, "value": h.value.written()})).collect::<Vec<_>>(),
            "secret": spec.secret.as_ref().map(|s| s.written()),
            "timeout_ms": self.timeout.as_millis() as u64,
            "body": String::from_utf8_lossy(body),
            "traceparent": traceparent,
        })
    }
}

/// A dead letter's request, read back for `dlq retry`: expanded in this process's environment.
pub struct StoredRequest {
    pub webhook: Webhook,
    pub body: Vec<u8>,
    pub traceparent: String,
}

impl StoredRequest {
    pub fn read(request: &Value, lookup: &dyn Fn(&str) -> Option<String>) -> Result<StoredRequest, String> {
        let text = |key: &str| request.get(key).and_then(Value::as_str);
        let env = |written: &str| crate::config::EnvString::expand(written, lookup);
        let url = env(text("url").ok_or("the stored request has no url")?)?;
        let mut headers = Vec::new();
        for h in request.get("headers").and_then(Value::as_array).into_iter().flatten() {
            let name = h.get("name").and_then(Value::as_str).ok_or("a stored header has no name")?;
            let value = h.get("value").and_then(Value::as_str).ok_or("a stored header has no value")?;
            headers.push(HeaderSpec { name: name.to_string(), value: env(value)? });
        }
        let secret = match text("secret") {
            Some(written) => Some(env(written)?),
            None => None,
        };
        let timeout = Duration::from_millis(request.get("timeout_ms").and_then(Value::as_u64).unwrap_or(10_000).max(1));
        let spec = WebhookSpec {
            name: None,
            url,
            headers,
            secret,
            timeout: crate::config::Dur(timeout),
            body: None,
            retry: RetrySpec { attempts: 1, ..RetrySpec::default() },
        };
        let webhook = Webhook::build(&spec).map_err(|(key, message)| format!("{key}: {message}"))?;
        Ok(StoredRequest {
            webhook,
            body: text("body").unwrap_or_default().as_bytes().to_vec(),
            traceparent: text("traceparent").unwrap_or_default().to_string(),
        })
    }
}

/// Renders a log action's line.
pub fn log_line(template: &Template, change: &Change, observer: &str, event_id: &str) -> String {
    template.render(&Scope { change, observer, event_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_time_dot_body() {
        // The expected tag was computed independently with Python's hmac module.
        let s = signature(b"Jefe", 1_700_000_000, b"{}");
        assert_eq!(s, "t=1700000000,v1=d3793e2b4103edfbd98cc19591832f5fad701d413db9fcae0ae7dab8184ed207");
        assert_ne!(s, signature(b"Jefe", 1_700_000_001, b"{}"));
    }

    #[test]
    fn urls_are_shown_without_path_or_query() {
        let url = crate::http::Url::parse("http://hooks.example:8080/in/s3cr3t?token=abc").unwrap();
        assert_eq!(shown_url(&url), "http://hooks.example:8080");
        assert_eq!(shown_url(&crate::http::Url::parse("http://[::1]/x").unwrap()), "http://[::1]");
        assert!(parse_url("http://user:pw@hooks.example/in").is_err(), "credentials in a URL are refused");
        assert!(parse_url("https://hooks.example/in").unwrap_err().contains("TLS"));
    }

    #[test]
    fn clean_text_has_no_control_characters() {
        assert_eq!(clean("plain text, unchanged", 200), "plain text, unchanged");
        assert_eq!(clean("a\0b\x07c\x7fd\u{9b}e", 200), "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e");
        assert_eq!(clean("line\nbreak\r\ntab\there\u{2028}", 200), "line break  tab here ");
        assert!(!clean("\0\x01\x1b[31m", 200).chars().any(char::is_control));
    }

    #[test]
    fn clean_text_is_cut_at_a_character_boundary() {
        assert_eq!(clean("abcdef", 6), "abcdef", "exactly the limit is not cut");
        assert_eq!(clean("abcdefg", 6), "abcde…");
        assert_eq!(clean("ééééééé", 4), "ééé…", "cut between characters, not bytes");
        assert_eq!(clean("🦀🦀🦀", 2).chars().count(), 2);
        assert_eq!(clean("abc", 0), "");
        assert_eq!(clean("", 5), "");
    }

    /// Answers one request with `answer` (raw HTTP), on a thread.
    fn one_answer(answer: Vec<u8>) -> String {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/in", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(&answer);
        });
        url
    }

    #[test]
    fn a_binary_answer_makes_a_clean_short_error() {
        let mut body = b"\0\x01oops\r\n\xff\xfe".to_vec();
        body.resize(1 << 20, b'x');
        let mut answer =
            format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        answer.extend_from_slice(&body);
        let url = one_answer(answer);
        let stored = StoredRequest::read(&json!({"url": url, "body": "{}"}), &|_| None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let attempt = runtime.block_on(send(&crate::http::Client::new(1), &stored.webhook, b"{}", "e-1", "00-x"));
        let Attempt::Retry { status: Some(500), error, .. } = attempt else { panic!("expected a retry: {attempt:?}") };
        assert!(error.starts_with("answered 500: \u{FFFD}\u{FFFD}oops"), "{error}");
        assert!(!error.chars().any(char::is_control), "{error:?}");
        assert_eq!(error.chars().count(), "answered 500: ".len() + ANSWER_CHARS, "{error}");
        assert!(error.ends_with('…'), "{error}");
    }

    #[test]
    fn waits_stop_at_the_attempt_limit_and_the_deadline() {
        let retry = RetrySpec { attempts: 3, jitter: 0.0, ..RetrySpec::default() };
        let start = Instant::now();
        assert_eq!(next_wait(&retry, 1, start, None), Some(retry.wait_after(1)));
        assert_eq!(next_wait(&retry, 3, start, None), None);
        let asked = next_wait(&retry, 1, start, Some(Duration::from_secs(3))).unwrap();
        assert_eq!(asked, Duration::from_secs(3), "Retry-After is honoured up to max_backoff");
        let hurried = RetrySpec { give_up_after: Some(crate::config::Dur(Duration::from_millis(50))), ..retry };
        assert_eq!(next_wait(&hurried, 1, start, None), None, "the next attempt would start after the deadline");
    }

    #[test]
    fn jittered_waits_are_never_longer() {
        let retry = RetrySpec { jitter: 1.0, ..RetrySpec::default() };
        for _ in 0..100 {
            let wait = next_wait(&retry, 2, Instant::now(), None).unwrap();
            assert!(wait <= retry.wait_after(2));
        }
    }
}
