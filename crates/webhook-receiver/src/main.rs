//! `webhook-receiver`: a webhook endpoint for benchmarks.
//!
//! It answers every request 200 at once, over kept-alive HTTP/1.1 connections, as many at a
//! time as clients open; and when stopped it can write one line per request, for latency and
//! exactly-once checks. Usage:
//!
//! ```text
//! webhook-receiver [--port PORT] [--record FILE] [--print] [--exit-on-stdin-eof]
//! ```
//!
//! - `--port PORT`: the port on 127.0.0.1 (default 0: an ephemeral one).
//! - `--record FILE`: on exit, write `FILE`, one line per request in arrival order:
//!   `<unix_nanos_received> <idempotency-key or -> <x-commit-ns or ->`. Header values are
//!   written as sent, except that an empty value is written `-` and whitespace or control
//!   bytes become `_`, so that every line has exactly three fields. At most
//!   [`MAX_RECORD_BYTES`] of lines are held (some 12 million requests); past that, requests
//!   are still answered but not recorded, and the exit status says so.
//! - `--print`: also write every request to standard output as it arrives, for a person
//!   following along in a terminal: a line
//!   `--- <received, RFC 3339 UTC> <METHOD> <path[?query]>`, then each header as
//!   `name: value` (names in lower case, in arrival order, repeated names together), a blank
//!   line, the body (as UTF-8, lossily; JSON is pretty-printed with `serde_json`, which sorts
//!   object keys), and a blank line. Each request is written whole, and flushed, before it is
//!   answered. Off by default: it reads and keeps every body.
//! - `--exit-on-stdin-eof`: also stop when standard input reaches its end (for a parent that
//!   holds a pipe to it and simply drops it). Off by default, because a program started with
//!   no standard input would otherwise stop at once.
//!
//! The first line on standard output is `listening on http://127.0.0.1:PORT/hook`, printed
//! once the port is bound and the signal handlers are in place; with `--print`, the requests
//! follow it. It stops on SIGTERM or SIGINT (or end of input, as above), writes the record,
//! prints a summary on standard error, and exits 0; 3 if requests were left out of the
//! record; 2 for bad arguments; 1 for other errors.

use std::convert::Infallible;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Response;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::signal::unix::{SignalKind, signal};

/// The most bytes of record lines held in memory (1 GiB).
const MAX_RECORD_BYTES: usize = 1 << 30;

const USAGE: &str = "usage: webhook-receiver [--port PORT] [--record FILE] [--print] [--exit-on-stdin-eof]";

/// The command line.
#[derive(Debug)]
struct Args {
    port: u16,
    record: Option<PathBuf>,
    print: bool,
    exit_on_stdin_eof: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args { port: 0, record: None, print: false, exit_on_stdin_eof: false };
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value.to_owned())),
            _ => (arg, None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"));
        match name.as_str() {
            "--port" => {
                let value = value()?;
                parsed.port = value.parse().map_err(|_| format!("--port {value:?} is not a port number"))?;
            }
            "--record" => parsed.record = Some(PathBuf::from(value()?)),
            "--print" => parsed.print = true,
            "--exit-on-stdin-eof" => parsed.exit_on_stdin_eof = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

/// What the handlers share: the record lines, the counts, and whether to print.
struct Recorder {
    /// Whether lines are kept at all (`--record` was given).
    recording: bool,
    /// Whether each request is written to standard output (`--print` was given).
    printing: bool,
    lines: Mutex<Vec<u8>>,
    requests: AtomicU64,
    left_out: AtomicU64,
}

impl Recorder {
    fn record(&self, received: SystemTime, request: &hyper::Request<Incoming>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !self.recording {
            return;
        }
        let nanos = received.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let mut line = Vec::with_capacity(96);
        let _ = write!(line, "{nanos} ");
        push_field(&mut line, request.headers().get("idempotency-key").map(|value| value.as_bytes()));
        line.push(b' ');
        push_field(&mut line, request.headers().get("x-commit-ns").map(|value| value.as_bytes()));
        line.push(b'\n');
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() + line.len() <= MAX_RECORD_BYTES {
            lines.extend_from_slice(&line);
        } else {
            self.left_out.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Appends a header value as one field: `-` when absent or empty, whitespace and control
/// bytes replaced by `_`.
fn push_field(line: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None | Some([]) => line.push(b'-'),
        Some(value) => line.extend(value.iter().map(|&byte| if byte <= b' ' || byte == 0x7f { b'_' } else { byte })),
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) if error.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("webhook-receiver: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("webhook-receiver: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> io::Result<ExitCode> {
    let recorder = Arc::new(Recorder {
        recording: args.record.is_some(),
        printing: args.print,
        lines: Mutex::new(Vec::new()),
        requests: AtomicU64::new(0),
        left_out: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    runtime.block_on(serve(args, Arc::clone(&recorder)))?;
    // Connections still open are dropped with the runtime; nothing more is recorded.
    drop(runtime);

    let requests = recorder.requests.load(Ordering::Relaxed);
    let left_out = recorder.left_out.load(Ordering::Relaxed);
    if let Some(path) = &args.record {
        let lines = recorder.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let mut file = BufWriter::new(std::fs::File::create(path)?);
        file.write_all(&lines)?;
        file.flush()?;
        eprintln!("webhook-receiver: {requests} requests, {} recorded in {}", requests - left_out, path.display());
    } else {
        eprintln!("webhook-receiver: {requests} requests");
    }
    if left_out > 0 {
        eprintln!("webhook-receiver: {left_out} requests were not recorded: over {MAX_RECORD_BYTES} bytes of record");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves until a stop signal (or end of input, when asked).
async fn serve(args: &Args, recorder: Arc<Recorder>) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    // In place before the line below: a parent may signal as soon as it has read it.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let stdin_closed = if args.exit_on_stdin_eof {
        let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("stdin-eof".to_owned()).spawn(move || {
            // Read and discard until the end (or an error, which ends input just the same).
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            let _ = closed.send(());
        })?;
        Some(on_close)
    } else {
        None
    };
    let stdin_closed = async move {
        match stdin_closed {
            Some(on_close) => drop(on_close.await),
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stdin_closed);
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}/hook")?;
    stdout.flush()?;
    drop(stdout);

    loop {
        let accepted = tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            _ = &mut stdin_closed => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let recorder = Arc::clone(&recorder);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&recorder), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Per-connection failures, or out of file descriptors: do not spin on the latter.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn handle(
    recorder: Arc<Recorder>,
    request: hyper::Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let received = SystemTime::now();
    recorder.record(received, &request);
    // Read the body to its end, so that the connection can carry the next request; keep it
    // only to print it.
    let (head, mut body) = request.into_parts();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) if recorder.printing => {
                if let Some(data) = frame.data_ref() {
                    kept.extend_from_slice(data);
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if recorder.printing {
        let block = format_request(received, &hyper::Request::from_parts(head, kept));
        // One lock per request, so that requests never interleave. A closed standard output
        // concerns only the person who closed it: the request is answered all the same.
        let mut stdout = io::stdout().lock();
        let _ = stdout.write_all(&block).and_then(|()| stdout.flush());
    }
    Ok(Response::new(Empty::new()))
}

/// A request as `--print` shows it: the `---` line, the headers, a blank line, the body, and
/// a blank line.
fn format_request(received: SystemTime, request: &hyper::Request<Vec<u8>>) -> Vec<u8> {
    let body = request.body();
    let mut block = Vec::with_capacity(512 + 2 * body.len());
    let uri = request.uri();
    let target = uri.path_and_query().map_or_else(|| uri.to_string(), |target| target.as_str().to_owned());
    let _ = writeln!(block, "--- {} {} {target}", rfc3339(received), request.method());
    for (name, value) in request.headers() {
        let _ = writeln!(block, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    block.push(b'\n');
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => {
            let _ = serde_json::to_writer_pretty(&mut block, &json);
        }
        Err(_) => block.extend_from_slice(String::from_utf8_lossy(body).as_bytes()),
    }
    if !body.is_empty() && !block.ends_with(b"\n") {
        block.push(b'\n');
    }
    block.push(b'\n');
    block
}

/// `time` in RFC 3339, UTC, to the microsecond: `2023-11-14T22:13:20.000000Z` (times before
/// 1970 are written as its start).
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's `civil_from_days`, in eras of 400 years counted from 0000-03-01.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3_600,
        of_day / 60 % 60,
        of_day % 60,
        since_epoch.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn arguments_parse_in_both_spellings() {
        let parsed = args(&["--port", "8080", "--record=/tmp/r", "--print", "--exit-on-stdin-eof"]).unwrap();
        assert_eq!(
            (parsed.port, parsed.record, parsed.print, parsed.exit_on_stdin_eof),
            (8080, Some("/tmp/r".into()), true, true)
        );
        let parsed = args(&[]).unwrap();
        assert_eq!((parsed.port, parsed.record, parsed.print, parsed.exit_on_stdin_eof), (0, None, false, false));
        assert!(args(&["--port"]).unwrap_err().contains("needs a value"));
        assert!(args(&["--port", "http"]).is_err());
        assert!(args(&["--bogus"]).is_err());
    }

    #[test]
    fn fields_are_single_words() {
        let mut line = Vec::new();
        push_field(&mut line, None);
        push_field(&mut line, Some(b""));
        push_field(&mut line, Some(b"a b\tc"));
        assert_eq!(line, b"--a_b_c");
    }

    #[test]
    fn times_are_rfc_3339_utc() {
        let at = |seconds: u64, nanos: u32| rfc3339(UNIX_EPOCH + Duration::new(seconds, nanos));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(1_700_000_000, 123_456_789), "2023-11-14T22:13:20.123456Z");
        assert_eq!(at(4_107_542_399, 999_999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), "1970-01-01T00:00:00.000000Z");
    }

    fn request(target: &str, headers: &[(&str, &str)], body: &[u8]) -> hyper::Request<Vec<u8>> {
        let mut builder = hyper::Request::post(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body.to_vec()).unwrap()
    }

    fn format(request: &hyper::Request<Vec<u8>>) -> String {
        String::from_utf8(format_request(UNIX_EPOCH + Duration::from_secs(1_700_000_000), request)).unwrap()
    }

    #[test]
    fn json_bodies_are_printed_pretty() {
        let request = request(
            "/hook?attempt=2",
            &[("Content-Type", "application/json"), ("Idempotency-Key", "evt-1"), ("X-Tag", "a"), ("x-tag", "b")],
            br#"{"id":1,"tags":["x"]}"#,
        );
        assert_eq!(
            format(&request),
            "--- 2023-11-14T22:13:20.000000Z POST /hook?attempt=2\n\
             content-type: application/json\nidempotency-key: evt-1\nx-tag: a\nx-tag: b\n\n\
             {\n  \"id\": 1,\n  \"tags\": [\n    \"x\"\n  ]\n}\n\n"
        );
    }

    #[test]
    fn other_bodies_are_printed_as_text() {
        assert_eq!(
            format(&request("/hook", &[], b"plain\xffwords")),
            "--- 2023-11-14T22:13:20.000000Z POST /hook\n\nplain\u{fffd}words\n\n"
        );
        assert_eq!(format(&request("/hook", &[], b"line\n")), "--- 2023-11-14T22:13:20.000000Z POST /hook\n\nline\n\n");
        assert_eq!(format(&request("/", &[("a", "")], b"")), "--- 2023-11-14T22:13:20.000000Z POST /\na: \n\n\n");
    }
}
