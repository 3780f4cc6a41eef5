//! Release-mode throughput of `fundload_straightline::run`.
//!
//! Builds a 1,000,000-line input from the 1k reference file: 1,000 copies, copy `r` with ids
//! shifted by `r * 100_000` (unique across copies), customers spread over 500 ids, and the year
//! set to `2000 + r` (so windows do not collapse onto the same days). Times `run` over it five
//! times per scenario, output to `io::sink()` (formatting included), and prints the median, plus
//! the median on-CPU time (which leaves out waiting for a CPU on a shared machine).
//!
//! `cargo run --release -p fundload-straightline --example throughput`

use std::time::{Duration, Instant};

use fundload_straightline::{Rules, run};

/// Time this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`), to tell the
/// work apart from waiting for a CPU on a busy machine; `None` elsewhere.
fn on_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?))
}

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/fund_load/input.txt");
    let base = std::fs::read_to_string(path).expect("reading input.txt");
    let lines: Vec<&str> = base.lines().collect();
    let mut input = String::with_capacity(base.len() * 1_000 + 4_000_000);
    for rep in 0..1_000u64 {
        for line in &lines {
            // {"id":"X","customer_id":"C","load_amount":"A","time":"T"}
            let parts: Vec<&str> = line.split('"').collect();
            let id: u64 = parts[3].parse().expect("numeric id");
            let customer: u64 = parts[7].parse().expect("numeric customer");
            let time = format!("{}{}", 2000 + rep, &parts[15][4..]);
            input.push_str(&format!(
                r#"{{"id":"{}","customer_id":"{}","load_amount":"{}","time":"{}"}}"#,
                rep * 100_000 + id,
                customer + 1_000 * (rep % 10),
                parts[11],
                time
            ));
            input.push('\n');
        }
    }
    let input = input.into_bytes();
    println!("input: {} lines, {} bytes ({:.1} bytes/line)", 1_000_000, input.len(), input.len() as f64 / 1e6);
    for (name, rules) in [("baseline", Rules::baseline()), ("exp_mp", Rules::exp_mp())] {
        let mut times: Vec<Duration> = Vec::new();
        let mut cpu_times: Vec<Duration> = Vec::new();
        let mut counts = None;
        for _ in 0..5 {
            let cpu_start = on_cpu();
            let start = Instant::now();
            let c = run(&input, &rules, std::io::sink()).expect("sink never fails");
            times.push(start.elapsed());
            if let (Some(a), Some(b)) = (cpu_start, on_cpu()) {
                cpu_times.push(b - a);
            }
            counts = Some(c);
        }
        times.sort();
        cpu_times.sort();
        let median = times[2];
        let secs = median.as_secs_f64();
        println!(
            "{name:8}: median {:7.1} ms  {:5.2} M lines/s  {:6.0} MB/s  (min {:.1} ms, max {:.1} ms)  {:?}",
            secs * 1e3,
            1.0 / secs,
            input.len() as f64 / secs / 1e6,
            times[0].as_secs_f64() * 1e3,
            times[4].as_secs_f64() * 1e3,
            counts.expect("ran")
        );
        if let Some(cpu) = cpu_times.get(2) {
            println!(
                "          on-CPU median {:7.1} ms  {:5.2} M lines/s",
                cpu.as_secs_f64() * 1e3,
                1.0 / cpu.as_secs_f64()
            );
        }
    }
}
