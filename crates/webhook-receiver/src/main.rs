//! `webhook-receiver`: a webhook endpoint for benchmarks.
//!
//! It answers every request 200 at once, over kept-alive HTTP/1.1 connections, as many at a
//! time as clients open; and when stopped it can write one line per request, for latency and
//! exactly-once checks. Usage:
//!
//! ```text
//! webhook-receiver [--port PORT] [--record FILE] [--exit-on-stdin-eof]
//! ```
//!
//! - `--port PORT`: the port on 127.0.0.1 (default 0: an ephemeral one).
//! - `--record FILE`: on exit, write `FILE`, one line per request in arrival order:
//!   `<unix_nanos_received> <idempotency-key or -> <x-commit-ns or ->`. Header values are
//!   written as sent, except that an empty value is written `-` and whitespace or control
//!   bytes become `_`, so that every line has exactly three fields. At most
//!   [`MAX_RECORD_BYTES`] of lines are held (some 12 million requests); past that, requests
//!   are still answered but not recorded, and the exit status says so.
//! - `--exit-on-stdin-eof`: also stop when standard input reaches its end (for a parent that
//!   holds a pipe to it and simply drops it). Off by default, because a program started with
//!   no standard input would otherwise stop at once.
//!
//! The first line on standard output is `listening on http://127.0.0.1:PORT/hook`, printed
//! once the port is bound and the signal handlers are in place. It stops on SIGTERM or SIGINT
//! (or end of input, as above), writes the record, prints a summary on standard error, and
//! exits 0; 3 if requests were left out of the record; 2 for bad arguments; 1 for other errors.

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

const USAGE: &str = "usage: webhook-receiver [--port PORT] [--record FILE] [--exit-on-stdin-eof]";

/// The command line.
#[derive(Debug)]
struct Args {
    port: u16,
    record: Option<PathBuf>,
    exit_on_stdin_eof: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args { port: 0, record: None, exit_on_stdin_eof: false };
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
            "--exit-on-stdin-eof" => parsed.exit_on_stdin_eof = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

/// What the handlers share: the record lines and the counts.
struct Recorder {
    /// Whether lines are kept at all (`--record` was given).
    recording: bool,
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
    // Read the body to its end, so that the connection can carry the next request.
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    Ok(Response::new(Empty::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn arguments_parse_in_both_spellings() {
        let parsed = args(&["--port", "8080", "--record=/tmp/r", "--exit-on-stdin-eof"]).unwrap();
        assert_eq!((parsed.port, parsed.record, parsed.exit_on_stdin_eof), (8080, Some("/tmp/r".into()), true));
        let parsed = args(&[]).unwrap();
        assert_eq!((parsed.port, parsed.record, parsed.exit_on_stdin_eof), (0, None, false));
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
}
