//! One hop's latency on loopback, through the real link code.
//!
//! Two threads, A (group 0) and B (group 1), joined by two real TCP links on 127.0.0.1: A's
//! [`LinkSender`] to B's data port ([`spawn_listener`] → [`UpstreamSource`]) and B's back to
//! A's. With one envelope per frame (`max_envelopes = 1`), A sends one envelope with a 64-byte
//! payload (about the size of a fund_load attempt), B receives it through `Source::next_batch`
//! and sends it straight back, A receives it: one round trip is two hops, so a hop is RTT / 2.
//! Each hop is the whole data plane: encode + sign + write on one side; read, verify, decode,
//! the bounded channel and the wake-up of the receiving thread on the other.
//!
//! The baseline, in the same run, is a ping-pong of the same number of bytes (one frame's
//! length) over a plain `TcpStream` with `TCP_NODELAY`: the floor that loopback TCP and two
//! thread wake-ups per round trip set, so the ratio is what hopline's framing, signing,
//! verification, decoding and channel hand-off cost on top.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p hopline-runtime --bench hop_latency
//! HOP_LATENCY_ROUNDS=200000 CARGO_TARGET_DIR=/work/target-bench cargo bench -p hopline-runtime --bench hop_latency
//! ```
//!
//! Issue target: one envelope per frame, a hop's p50 under 100 µs and p99 under 1 ms. The
//! bench prints the figures against it but fails only on errors; the target is judged from
//! `docs/perf.md`. Run without `--bench` (as `cargo test --all-targets` does) it makes a short
//! smoke run.

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hopline_model::{CorrelationId, Envelope, EnvelopeHeader, Message, WireError, WireMessage};
use hopline_runtime::adapters::{Sink, Source};
use hopline_runtime::multiprocess::link::{LinkCounters, LinkSender, UpstreamSource, spawn_listener};
use hopline_transport::{FrameReader, Limits, TransportKey};

type BoxError = Box<dyn Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

/// Payload bytes per envelope: about one fund_load attempt.
const PAYLOAD_BYTES: usize = 64;
const GROUP_A: u16 = 0;
const GROUP_B: u16 = 1;
const DEFAULT_ROUNDS: usize = 50_000;
const WARMUP_ROUNDS: usize = 2_000;
const SMOKE_ROUNDS: usize = 200;
const SMOKE_WARMUP: usize = 50;
/// The issue's targets for one hop.
const TARGET_P50_US: f64 = 100.0;
const TARGET_P99_US: f64 = 1_000.0;

/// The bench's message: a fixed 64-byte payload whose first 8 bytes carry the round number.
#[derive(Debug, Clone, PartialEq)]
struct Ping([u8; PAYLOAD_BYTES]);

impl Ping {
    fn new(round: u64) -> Ping {
        let mut bytes = [0x5a; PAYLOAD_BYTES];
        bytes[..8].copy_from_slice(&round.to_le_bytes());
        Ping(bytes)
    }

    fn round(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

impl Message for Ping {
    fn kind(&self) -> &'static str {
        "ping"
    }
}

impl WireMessage for Ping {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }

    fn decode(payload: &Bytes) -> std::result::Result<Self, WireError> {
        let bytes = payload.as_ref().try_into().map_err(|_| WireError("a ping is exactly 64 bytes"))?;
        Ok(Ping(bytes))
    }
}

/// Binds a data port for the link `from` → `to` and starts its listener, as a worker does.
fn listen(run_key: &TransportKey, from: u16, to: u16, from_name: &str) -> Result<(SocketAddr, UpstreamSource<Ping>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let reader = FrameReader::new(run_key.for_link(from, to), Limits::default())?;
    let counters = Arc::new(LinkCounters::default());
    let source = spawn_listener::<Ping>(listener, Arc::new(Mutex::new(reader)), from, from_name, counters)?;
    Ok((addr, source))
}

/// Connects the link `from` → `to`, as a worker does: `TCP_NODELAY`, one envelope per frame.
fn connect(
    run_key: &TransportKey,
    addr: SocketAddr,
    from: u16,
    to: u16,
    to_name: &str,
    counters: Arc<LinkCounters>,
) -> Result<LinkSender<Ping>> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(LinkSender::new(stream, run_key, from, to, to_name, Limits::default().max_frame_bytes, 1, counters))
}

/// B: sends every envelope straight back until A's `End` frame, then ends its own link.
fn echo_group(mut source: UpstreamSource<Ping>, mut sender: LinkSender<Ping>) -> Result<u64> {
    let mut batch = Vec::with_capacity(1);
    let mut echoed = 0;
    loop {
        let more = source.next_batch(&mut batch, 1)?;
        echoed += batch.len() as u64;
        if !batch.is_empty() {
            sender.write_batch(&mut batch)?;
        }
        if !more {
            sender.finish()?;
            return Ok(echoed);
        }
    }
}

/// The hopline ping-pong; returns each measured round trip in ns, the wall time of the
/// measured rounds and the bytes of one frame on the wire.
fn hopline_rounds(warmup: usize, rounds: usize) -> Result<(Vec<u64>, Duration, u64)> {
    let run_key = TransportKey::generate()?;
    let (b_addr, b_source) = listen(&run_key, GROUP_A, GROUP_B, "a")?;
    let (a_addr, mut a_source) = listen(&run_key, GROUP_B, GROUP_A, "b")?;
    let a_counters = Arc::new(LinkCounters::default());
    let mut a_sender = connect(&run_key, b_addr, GROUP_A, GROUP_B, "b", Arc::clone(&a_counters))?;
    let b_sender = connect(&run_key, a_addr, GROUP_B, GROUP_A, "a", Arc::new(LinkCounters::default()))?;
    let b = thread::Builder::new().name("group-b".into()).spawn(move || echo_group(b_source, b_sender))?;

    let mut batch: Vec<Envelope<Ping>> = Vec::with_capacity(1);
    let mut round_trip = |round: u64| -> Result<Duration> {
        let header =
            EnvelopeHeader { seq: round, correlation_id: CorrelationId(u128::from(round)), ..Default::default() };
        batch.push(Envelope::new(header, Ping::new(round)));
        let start = Instant::now();
        a_sender.write_batch(&mut batch)?;
        if !a_source.next_batch(&mut batch, 1)? {
            return Err("group B ended its link in the middle of the run".into());
        }
        let rtt = start.elapsed();
        let intact = |echo: &Envelope<Ping>| {
            echo.header.seq == round && echo.payload.round() == round && echo.header.route.route_hop == 2
        };
        if !matches!(batch.as_slice(), [echo] if intact(echo)) {
            return Err(format!("round {round}: expected the envelope back after two hops, got {batch:?}").into());
        }
        batch.clear();
        Ok(rtt)
    };

    let mut round = 0u64;
    for _ in 0..warmup {
        round += 1;
        round_trip(round)?;
    }
    let frames = a_counters.frames_sent.load(Ordering::Relaxed).max(1);
    let frame_bytes = a_counters.bytes_sent.load(Ordering::Relaxed) / frames;
    let mut rtts = Vec::with_capacity(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        round += 1;
        rtts.push(round_trip(round)?.as_nanos() as u64);
    }
    let wall = started.elapsed();

    a_sender.finish()?;
    if a_source.next_batch(&mut batch, 1)? || !batch.is_empty() {
        return Err("group B sent more than the echoes before its End frame".into());
    }
    let echoed = b.join().map_err(|_| "group B panicked")??;
    if echoed != round {
        return Err(format!("group B echoed {echoed} envelopes, A sent {round}").into());
    }
    Ok((rtts, wall, frame_bytes))
}

/// The same ping-pong of `message_bytes` over a plain `TcpStream`: no framing, signing,
/// verification, decoding or channel.
fn raw_tcp_rounds(message_bytes: usize, warmup: usize, rounds: usize) -> Result<(Vec<u64>, Duration)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let echo = thread::Builder::new().name("raw-echo".into()).spawn(move || -> io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut buf = vec![0u8; message_bytes];
        loop {
            match stream.read_exact(&mut buf) {
                Ok(()) => stream.write_all(&buf)?,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })?;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut message = vec![0x5a; message_bytes];
    let mut back = vec![0u8; message_bytes];
    let mut round_trip = |round: u64| -> io::Result<Duration> {
        message[..8].copy_from_slice(&round.to_le_bytes());
        let start = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut back)?;
        let rtt = start.elapsed();
        if back != message {
            return Err(io::Error::other(format!("raw TCP round {round}: the echo differs")));
        }
        Ok(rtt)
    };
    let mut round = 0u64;
    for _ in 0..warmup {
        round += 1;
        round_trip(round)?;
    }
    let mut rtts = Vec::with_capacity(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        round += 1;
        rtts.push(round_trip(round)?.as_nanos() as u64);
    }
    let wall = started.elapsed();
    drop(stream);
    echo.join().map_err(|_| "the raw TCP echo thread panicked")??;
    Ok((rtts, wall))
}

/// Hop latency (RTT / 2) percentiles, in µs.
struct HopStats {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
    round_trips_per_s: f64,
}

impl HopStats {
    fn new(mut rtts_ns: Vec<u64>, wall: Duration) -> HopStats {
        rtts_ns.sort_unstable();
        let n = rtts_ns.len().max(1);
        let hop_us = |rtt_ns: u64| rtt_ns as f64 / 2.0 / 1_000.0;
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let at = |q: f64| hop_us(rtts_ns.get(((q * n as f64).ceil() as usize).clamp(1, n) - 1).copied().unwrap_or(0));
        HopStats {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: hop_us(rtts_ns.last().copied().unwrap_or(0)),
            mean: hop_us(rtts_ns.iter().sum::<u64>()) / n as f64,
            round_trips_per_s: rtts_ns.len() as f64 / wall.as_secs_f64().max(1e-9),
        }
    }

    fn row(&self, name: &str) -> String {
        format!(
            "{name:<22}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>10.1}{:>9.1}{:>15.0}",
            self.p50, self.p90, self.p99, self.p999, self.max, self.mean, self.round_trips_per_s
        )
    }
}

fn ratio_row(hopline: &HopStats, raw: &HopStats) -> String {
    let r = |a: f64, b: f64| if b > 0.0 { format!("{:.2}x", a / b) } else { "-".into() };
    format!(
        "{:<22}{:>9}{:>9}{:>9}{:>9}{:>10}{:>9}{:>15}",
        "hopline / raw",
        r(hopline.p50, raw.p50),
        r(hopline.p90, raw.p90),
        r(hopline.p99, raw.p99),
        r(hopline.p999, raw.p999),
        r(hopline.max, raw.max),
        r(hopline.mean, raw.mean),
        r(hopline.round_trips_per_s, raw.round_trips_per_s),
    )
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn rounds_from_env(default: usize) -> Result<usize> {
    match std::env::var("HOP_LATENCY_ROUNDS") {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("HOP_LATENCY_ROUNDS is `{text}`; expected a positive number of round trips").into()),
        },
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => Err(format!("HOP_LATENCY_ROUNDS: {e}").into()),
    }
}

fn run() -> Result<()> {
    // `cargo bench` passes `--bench`; without it (`cargo test --all-targets`) make a smoke run.
    let bench = std::env::args().any(|a| a == "--bench");
    let (default_rounds, warmup) = if bench { (DEFAULT_ROUNDS, WARMUP_ROUNDS) } else { (SMOKE_ROUNDS, SMOKE_WARMUP) };
    let rounds = rounds_from_env(default_rounds)?;

    // A link that breaks before it authenticated leaves the other side waiting: bound the run.
    let (done, watchdog) = mpsc::channel::<()>();
    let limit = Duration::from_secs(60) + Duration::from_millis(rounds as u64 * 2);
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = watchdog.recv_timeout(limit) {
            eprintln!("hop_latency: no result after {limit:?}; a link is stuck");
            std::process::exit(2);
        }
    });

    let (hop_rtts, hop_wall, frame_bytes) = hopline_rounds(warmup, rounds)?;
    let (raw_rtts, raw_wall) = raw_tcp_rounds(frame_bytes as usize, warmup, rounds)?;
    drop(done);
    let hopline = HopStats::new(hop_rtts, hop_wall);
    let raw = HopStats::new(raw_rtts, raw_wall);

    let cpus = thread::available_parallelism().map(|n| n.get().to_string()).unwrap_or_else(|_| "unknown".into());
    println!("hop_latency: one hop = RTT / 2 of a ping-pong between two threads over 127.0.0.1 (TCP_NODELAY)");
    println!(
        "  hopline: LinkSender -> spawn_listener/UpstreamSource each way, 1 envelope per frame, \
         {PAYLOAD_BYTES}-byte payload, no trace context, {frame_bytes}-byte frame (HMAC-SHA256)"
    );
    println!("  raw TCP: write_all/read_exact of {frame_bytes} bytes on a plain TcpStream, echoed by a thread");
    println!(
        "  machine: {cpus} logical CPUs (available_parallelism), {}, {}-{}",
        cpu_model().as_deref().unwrap_or("cpu model unknown"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    println!(
        "  rounds: {rounds} measured round trips each, after {warmup} warm-up round trips{}",
        if bench { "" } else { " (smoke run: pass --bench, as cargo bench does, for the full run)" }
    );
    println!();
    println!(
        "{:<22}{:>9}{:>9}{:>9}{:>9}{:>10}{:>9}{:>15}",
        "hop latency (us)", "p50", "p90", "p99", "p99.9", "max", "mean", "round trips/s"
    );
    println!("{}", hopline.row("hopline link"));
    println!("{}", raw.row(&format!("raw TCP ({frame_bytes} B)")));
    println!("{}", ratio_row(&hopline, &raw));
    println!();
    let verdict = |value: f64, target: f64| if value < target { "under" } else { "NOT under" };
    println!(
        "target (issue, one envelope per frame): hop p50 < {TARGET_P50_US} us: {:.1} us, {}; \
         hop p99 < {TARGET_P99_US} us: {:.1} us, {}",
        hopline.p50,
        verdict(hopline.p50, TARGET_P50_US),
        hopline.p99,
        verdict(hopline.p99, TARGET_P99_US)
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("hop_latency: {e}");
        std::process::exit(1);
    }
}
