"""Policy gate start-up and latency: `python benchmarks/policy_bench.py` times importing and building the gate and its
first check, then checks every prompt of the repository's policy sets and prints mean, p50, p99 and max per prompt
(the goals: start-up under 1 s, p99 ≤ 1 ms on the development machine)."""

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "policy"


def main() -> None:
    started = time.perf_counter()
    from bot.moderation.policy import PolicyGate, english_detector

    imported = time.perf_counter()
    gate = PolicyGate()
    built = time.perf_counter()
    gate.check_prompt("a warm-up prompt that loads what an English prompt needs")
    checked = time.perf_counter()
    english_detector().load()  # what the bot's start adds: the second-opinion detectors
    loaded = time.perf_counter()
    print(f"start-up: import {imported - started:.2f} s, build {built - imported:.2f} s, first check "
          f"{checked - built:.2f} s (total {checked - started:.2f} s); the other detectors {loaded - checked:.2f} s")
    prompts = [json.loads(line)["text"] for name in sorted(DATA.glob("*.jsonl")) for line in name.open()]
    for label in ("first pass (every prompt new)", "second pass (caches warm)"):
        times = []
        for prompt in prompts:
            start = time.perf_counter()
            gate.check_prompt(prompt)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
        print(f"{label}, {len(times)} prompts: mean {statistics.mean(times):.3f} ms, p50 {p50:.3f} ms, "
              f"p99 {p99:.3f} ms, max {times[-1]:.3f} ms")

if __name__ == "__main__":
    main()
