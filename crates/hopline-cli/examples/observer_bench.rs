//! The observer, end to end: PostgreSQL (a fresh server, `pg-testbed`), `hopline run` on an
//! observer config (the release binary), and a local webhook receiver that answers at once.
//!
//! ```text
//! cargo build --release -p hopline-cli
//! cargo run --release -p hopline-cli --example observer_bench -- throughput [UPDATES] [BATCH_SIZE]
//! cargo run --release -p hopline-cli --example observer_bench -- latency [RATE] [SECONDS]
//! ```
//!
//! - `throughput`: UPDATES (100,000) single-row updates that each match, committed in
//!   transactions of 100 as fast as one writer can, while the observer runs; then the same
//!   number written while it is stopped and drained as a backlog. Reports changes delivered per
//!   second, from the first commit to the last webhook received.
//! - `latency`: RATE changes a second (1,000) for SECONDS (20), in transactions of 10 every
//!   10 ms; the latency of each change from its commit (the writer's COMMIT returning) to its
//!   webhook arriving: p50, p99, max.
//!
//! The server runs with fsync off (pg-testbed's settings): the figures are the observer's,
//! not the disk's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use pg_testbed::PgServer;
use webhook_receiver::{Behaviour, Receiver};

fn hopline_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/release/examples/observer_bench → target/release/hopline
    exe.parent().unwrap().parent().unwrap().join("hopline")
}

fn config(batch_size: usize) -> String {
    format!(
        r#"app: observer
scenario: bench
runtime:
  batch_size: {batch_size}
source:
  kind: postgres
  params:
    database: ${{DATABASE_URL}}
sink:
  kind: checkpoint
nodes:
  - kind: match
    params:
      observers:
        - name: order_paid
          table: orders
          ops: [update]
          condition: "changed_to(status, 'paid')"
          actions:
{action}
  - kind: act
    params:
      concurrency: {concurrency}
"#,
        concurrency = std::env::var("BENCH_CONCURRENCY").unwrap_or_else(|_| "64".into()),
        action = match std::env::var("BENCH_ACTION").as_deref() {
            // Every change to the log, and only the last one (of 100,000 or 200,000) to the
            // receiver, to tell when it is done: the cost of reading and checkpointing alone.
            Ok("log") =>
                "            - log: { message: \"{key.id}\" }\n        - name: last\n          table: orders\n          \
                          condition: \"after.id == 100000 || after.id == 200000\"\n          actions:\n            \
                          - webhook: { url: \"${WEBHOOK_URL}\" }",
            _ => "            - webhook:\n                url: ${WEBHOOK_URL}\n                timeout: 2s",
        }
    )
}

struct Observer(Child);

impl Drop for Observer {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn start_observer(pg: &PgServer, receiver: &Receiver, config: &std::path::Path) -> Observer {
    let child = Command::new(hopline_bin())
        .arg("run")
        .arg(config)
        .arg("--quiet")
        .env("DATABASE_URL", pg.url())
        .env("WEBHOOK_URL", receiver.url())
        .stdout(Stdio::null())
        .stderr(if std::env::var("BENCH_ACTION").as_deref() == Ok("log") { Stdio::null() } else { Stdio::inherit() })
        .spawn()
        .expect("hopline (build it with cargo build --release -p hopline-cli)");
    let mut db = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = db
            .query_one(
                "SELECT to_regclass('hopline.checkpoint') IS NOT NULL AND EXISTS (SELECT 1 FROM hopline.checkpoint)",
                &[],
            )
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the observer did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Observer(child)
}

fn setup(rows: i64, batch_size: usize) -> (PgServer, Receiver, tempfile::TempDir, PathBuf) {
    let pg = PgServer::start();
    pg.sql(&format!(
        "CREATE TABLE orders (id bigint PRIMARY KEY, status text, total numeric(12,2), customer text);
         INSERT INTO orders SELECT i, 'pending', 10.50 + i % 1000, 'c' || (i % 97) FROM generate_series(1, {rows}) i;"
    ));
    let receiver = Receiver::start(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("observer_orders_bench.yml");
    std::fs::write(&path, config(batch_size)).unwrap();
    (pg, receiver, dir, path)
}

/// Commits `UPDATE ... SET status = 'paid'` for ids `from..=to`, `per_tx` rows a transaction.
fn write(db: &mut postgres::Client, from: i64, to: i64, per_tx: i64) {
    let mut id = from;
    while id <= to {
        let last = (id + per_tx - 1).min(to);
        db.execute("UPDATE orders SET status = 'paid' WHERE id BETWEEN $1 AND $2", &[&id, &last]).unwrap();
        id = last + 1;
    }
}

fn wait_count(receiver: &Receiver, n: usize) -> Instant {
    let n = if std::env::var("BENCH_ACTION").as_deref() == Ok("log") { 1 } else { n };
    let deadline = Instant::now() + Duration::from_secs(600);
    while receiver.count() < n {
        assert!(Instant::now() < deadline, "only {} of {n} webhooks arrived", receiver.count());
        std::thread::sleep(Duration::from_millis(1));
    }
    Instant::now()
}

fn throughput(updates: i64, batch_size: usize) {
    let (pg, receiver, _dir, config) = setup(2 * updates, batch_size);
    let mut db = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    let observer = start_observer(&pg, &receiver, &config);

    let started = Instant::now();
    write(&mut db, 1, updates, 100);
    let written = started.elapsed();
    let done = wait_count(&receiver, updates as usize);
    let live = done - started;
    println!(
        "live:    {updates} updates in transactions of 100, written in {:.2} s ({:.0}/s); delivered in {:.2} s: {:.0} changes/s",
        written.as_secs_f64(),
        updates as f64 / written.as_secs_f64(),
        live.as_secs_f64(),
        updates as f64 / live.as_secs_f64()
    );
    drop(observer);

    // A backlog: written while the observer is stopped, then drained.
    write(&mut db, updates + 1, 2 * updates, 100);
    receiver.clear();
    let started = Instant::now();
    let observer = start_observer(&pg, &receiver, &config);
    let done = wait_count(&receiver, updates as usize);
    let drained = done - started;
    println!(
        "backlog: {updates} changes drained in {:.2} s (start included): {:.0} changes/s",
        drained.as_secs_f64(),
        updates as f64 / drained.as_secs_f64()
    );
    drop(observer);
}

fn latency(rate: i64, seconds: i64) {
    let per_tx = 10;
    let total = rate * seconds;
    let (pg, receiver, _dir, config) = setup(total, 256);
    let mut db = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    let observer = start_observer(&pg, &receiver, &config);
    let interval = Duration::from_secs_f64(per_tx as f64 / rate as f64);
    let mut committed: HashMap<i64, SystemTime> = HashMap::with_capacity(total as usize);
    let start = Instant::now();
    let mut id = 1;
    let mut tick = 0u32;
    while id <= total {
        let due = start + interval * tick;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let last = (id + per_tx - 1).min(total);
        db.execute("UPDATE orders SET status = 'paid' WHERE id BETWEEN $1 AND $2", &[&id, &last]).unwrap();
        let at = SystemTime::now();
        for k in id..=last {
            committed.insert(k, at);
        }
        id = last + 1;
        tick += 1;
    }
    let elapsed = start.elapsed();
    wait_count(&receiver, total as usize);
    drop(observer);
    let mut latencies: Vec<f64> = receiver
        .requests()
        .iter()
        .map(|r| {
            let id = r.json()["key"]["id"].as_i64().unwrap();
            let at = committed[&id];
            match r.received_at.duration_since(at) {
                Ok(d) => d.as_secs_f64() * 1000.0,
                Err(e) => -(e.duration().as_secs_f64() * 1000.0),
            }
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1];
    println!(
        "latency: {total} changes at {:.0}/s (transactions of {per_tx}), commit to webhook: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies.last().unwrap()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: i64| args.get(i).map_or(default, |a| a.parse().expect("a number"));
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(number(1, 100_000), number(2, 1024) as usize),
        Some("latency") => latency(number(1, 1_000), number(2, 20)),
        _ => {
            eprintln!("usage: observer_bench throughput [UPDATES] [BATCH_SIZE] | latency [RATE] [SECONDS]");
            std::process::exit(2);
        }
    }
}
