"""Policy gate start-up and latency: `python benchmarks/policy_bench.py [--runs N]`.

Each run is a fresh process: it times importing and building the gate and its first check, then checks every
prompt of the repository's policy sets once (each prompt new to the gate; its memories hold only earlier prompts'
words) and a second time (all remembered). It prints mean, p50, p99 and max per prompt in wall time and in the
process's CPU time. On a shared machine both also count other processes' turns and cache misses, so with several
runs the summary also takes each prompt's fastest run: what the gate costs on a quiet machine. The goals: start-up
under 1 s, p99 ≤ 1 ms on the development machine for prompts the gate has not seen.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "policy"


def one_run() -> dict:
    """Time one fresh process's start-up and two passes over the sets (printed as JSON by --once)."""
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from bot.moderation.policy import PolicyGate

    imported = time.perf_counter()
    gate = PolicyGate()
    built = time.perf_counter()
    gate.check_prompt("a warm-up prompt that loads what an English prompt needs")
    checked = time.perf_counter()
    gate.warm_up()  # what the bot's start adds, off its event loop: the second-opinion detectors
    startup = {"import": imported - started, "build": built - imported, "first check": checked - built,
               "warm-up": time.perf_counter() - checked}
    prompts = [json.loads(line)["text"] for name in sorted(DATA.glob("*.jsonl")) for line in name.open()]
    passes = []
    for _ in range(2):
        wall, cpu = [], []
        for prompt in prompts:
            start, start_cpu = time.perf_counter(), time.process_time()
            gate.check_prompt(prompt)
            wall.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
        passes.append({"wall": wall, "cpu": cpu})
    return {"startup": startup, "passes": passes}


def _summary(times: list[float]) -> str:
    times = sorted(times)
    p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
    return f"mean {statistics.mean(times):.3f} ms, p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {times[-1]:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes to run (default 3)")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        print(json.dumps(one_run()))
        return
    runs = [json.loads(subprocess.run([sys.executable, __file__, "--once"], capture_output=True, text=True,
                                      check=True).stdout) for _ in range(args.runs)]
    for number, run in enumerate(runs, start=1):
        startup = run["startup"]
        print(f"run {number}: start-up " + ", ".join(f"{k} {v:.2f} s" for k, v in startup.items())
              + f" (import to first check {startup['import'] + startup['build'] + startup['first check']:.2f} s)")
        for label, one in zip(("first pass (new prompts)", "second pass (remembered)"), run["passes"], strict=True):
            print(f"  {label}: {_summary(one['wall'])} wall; {_summary(one['cpu'])} CPU")
    for index, label in enumerate(("first pass (new prompts)", "second pass (remembered)")):
        best = [min(times) for times in zip(*(run["passes"][index]["cpu"] for run in runs), strict=True)]
        print(f"each prompt's fastest of {len(runs)} runs, {label}, {len(best)} prompts: {_summary(best)} CPU")


if __name__ == "__main__":
    main()
