"""Policy gate latency: `python benchmarks/policy_bench.py` checks every prompt of the repository's policy sets and
prints mean, p50, p99 and max per prompt (the goal: p99 ≤ 1 ms on the development machine)."""

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.moderation.policy import PolicyGate

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "policy"


def main() -> None:
    prompts = [json.loads(line)["text"] for name in sorted(DATA.glob("*.jsonl")) for line in name.open()]
    gate = PolicyGate()
    started = time.perf_counter()
    gate.check_prompt("a warm-up prompt that loads the detectors and word lists")
    print(f"load: {time.perf_counter() - started:.1f} s")
    for _ in range(2):  # the second pass is the steady state (caches warm)
        times = []
        for prompt in prompts:
            start = time.perf_counter()
            gate.check_prompt(prompt)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(f"{len(times)} prompts: mean {statistics.mean(times):.3f} ms, p50 {times[len(times) // 2]:.3f} ms, "
          f"p99 {times[int(len(times) * 0.99)]:.3f} ms, max {times[-1]:.3f} ms")


if __name__ == "__main__":
    main()
