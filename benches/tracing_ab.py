#!/usr/bin/env python3
"""Tracing overhead on fund_load, memory profile: alternating runs, medians, ratios.

Builds are expected at:
  target/release/hopline          cargo build --release -p hopline-cli
  target-notrace/release/hopline  cargo build --release -p hopline-cli --no-default-features \
                                      --target-dir target-notrace
and an input at /tmp/g1.txt (hopline generate fund_load -n 1000000 --seed 1 -o /tmp/g1.txt).
Usage: python3 benches/tracing_ab.py [ROUNDS] [--multiprocess]   (from the repository root)
"""
import os, resource, statistics, subprocess, sys, tempfile, time

INPUT = "/tmp/g1.txt"
CONFIG = "pipelines/fund_load/baseline.yml"
if "--multiprocess" in sys.argv:
    CONFIG = "pipelines/fund_load/multiprocess/baseline.yml"


def traced_config(directory, ratio, exporter):
    with open(CONFIG) as f:
        # The copy lives elsewhere: make the config's relative input path absolute.
        text = f.read().replace("path: ../", "path: " + os.path.abspath(os.path.dirname(CONFIG)) + "/../")
    section = (
        "runtime:\n  observability:\n    tracing:\n"
        f"      sampler: {{ name: traceidratio, ratio: {ratio} }}\n      exporters: [{exporter}]\n"
    )
    path = os.path.join(directory, f"traced-{ratio}.yml")
    with open(path, "w") as f:
        f.write(text.replace("runtime:\n", section, 1))
    return path


def main():
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    rounds = int(numbers[0]) if numbers else 15
    with tempfile.TemporaryDirectory() as tmp:
        one_percent = traced_config(tmp, 0.01, f"{{ file: {{ path: {tmp}/spans.jsonl }} }}")
        run = ["run", "-q", "-i", INPUT, "-o", "/dev/null"]
        commands = {
            "compiled out": ["target-notrace/release/hopline", *run, CONFIG],
            "tracing off": ["target/release/hopline", *run, CONFIG],
            "1% sampled, file": ["target/release/hopline", *run, one_percent],
        }
        wall = {name: [] for name in commands}
        cpu = {name: [] for name in commands}
        for _ in range(rounds):
            for name, command in commands.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(command, check=True)
                wall[name].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    base_wall = statistics.median(wall["compiled out"])
    base_cpu = statistics.median(cpu["compiled out"])
    base_min = min(wall["compiled out"])
    for name in commands:
        w, c, m = statistics.median(wall[name]), statistics.median(cpu[name]), min(wall[name])
        print(
            f"{name:18} wall median {w * 1000:6.1f} ms ({w / base_wall:.3f})  min {m * 1000:6.1f} ms ({m / base_min:.3f})"
            f"  cpu median {c * 1000:6.1f} ms ({c / base_cpu:.3f})"
        )


if __name__ == "__main__":
    main()
