//! hopline's memory profile beside the straight-line rules, on one input file, in one run.
//!
//! Runs both in turn (alternating, so machine noise hits both alike), five times each, from
//! fresh state, output into memory; checks the outputs are byte-identical; prints the medians
//! of wall time and of on-CPU time, and the ratio.
//!
//! `cargo run --release -p hopline-fundload --example compare -- INPUT [baseline|exp_mp]`

use std::time::{Duration, Instant};

use fundload_straightline::Rules;
use hopline_fundload::{LoadMsg, registry};
use hopline_model::PipelineConfig;
use hopline_runtime::memory::run_bytes;

/// Time this thread has spent on a CPU, from Linux's schedstat; zero elsewhere.
fn on_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(stat.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0))
}

fn timed(f: impl FnOnce() -> Vec<u8>) -> (Vec<u8>, Duration, Duration) {
    let (wall, cpu) = (Instant::now(), on_cpu());
    let out = f();
    (out, wall.elapsed(), on_cpu() - cpu)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: compare INPUT [baseline|exp_mp]");
    let scenario = args.next().unwrap_or_else(|| "baseline".into());
    let input = std::fs::read(&path).expect("reading input");
    let config_path = format!("{}/../../pipelines/fund_load/{scenario}.yml", env!("CARGO_MANIFEST_DIR"));
    let config = PipelineConfig::from_yaml(&config_path, &std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let rules = if scenario == "exp_mp" { Rules::exp_mp() } else { Rules::baseline() };
    let lines = input.iter().filter(|&&b| b == b'\n').count();

    let (mut sl_wall, mut sl_cpu, mut hl_wall, mut hl_cpu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..5 {
        let (expected, wall, cpu) = timed(|| {
            let mut out = Vec::with_capacity(input.len() / 2);
            fundload_straightline::run(&input, &rules, &mut out).unwrap();
            out
        });
        sl_wall.push(wall);
        sl_cpu.push(cpu);
        let (got, wall, cpu) = timed(|| {
            let mut pipeline = registry().build(&config, &["line"], &["record"]).unwrap();
            run_bytes::<LoadMsg>(&mut pipeline, &input, config.runtime.batch_size).unwrap().0
        });
        hl_wall.push(wall);
        hl_cpu.push(cpu);
        assert!(got == expected, "outputs differ");
    }
    let (sw, sc, hw, hc) = (median(sl_wall), median(sl_cpu), median(hl_wall), median(hl_cpu));
    let rate = |d: Duration| lines as f64 / d.as_secs_f64() / 1e6;
    println!("{path} ({lines} lines), {scenario}, median of 5");
    println!(
        "  straight line  wall {:>8.1} ms ({:.2} M/s)  on-CPU {:>8.1} ms",
        sw.as_secs_f64() * 1e3,
        rate(sw),
        sc.as_secs_f64() * 1e3
    );
    println!(
        "  hopline memory wall {:>8.1} ms ({:.2} M/s)  on-CPU {:>8.1} ms",
        hw.as_secs_f64() * 1e3,
        rate(hw),
        hc.as_secs_f64() * 1e3
    );
    println!(
        "  hopline / straight line throughput: {:.2} (wall), {:.2} (on-CPU)",
        sw.as_secs_f64() / hw.as_secs_f64(),
        sc.as_secs_f64() / hc.as_secs_f64()
    );
}
