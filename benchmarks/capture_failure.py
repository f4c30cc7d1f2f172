"""A CUDA graph capture that fails, on a GPU: what `t2v.compiled.CUDAGraphs` does after it.

A capture routes the memory it allocates to its graphs' pool. If a failed capture left that routing on, memory
allocated later would lie in the pool that graph replays write into, and a replay would overwrite it. CUDAGraphs
gives up only the failed key (docs/perf-notes.md row 40); this checks on the GPU at hand that doing so is safe after
a capture broken the way the bot's background compile broke them (a device-wide synchronize, row 38):

* the failed call is still served, and right, and the key runs without a graph from then on;
* the stream is no longer capturing;
* memory allocated after the failure lies in the default pool, not a graph's;
* replaying a graph captured before the failure and one captured after leaves that memory as it was;
* the graph captured after the failure replays right.

GPU:  python benchmarks/capture_failure.py --out OUT/capture_failure.json
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/capture_failure.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import probes  # noqa: E402
from t2v.compiled import CUDAGraphs  # noqa: E402

log = logging.getLogger("capture_failure")
DEFAULT_POOL = (0, 0)


def pool_of(tensor: torch.Tensor) -> tuple[int, int] | None:
    """The caching allocator's pool id of the segment holding `tensor`'s memory ((0, 0): the default pool)."""
    address = tensor.data_ptr()
    for segment in torch.cuda.memory_snapshot():
        if segment["address"] <= address < segment["address"] + segment["total_size"]:
            return tuple(segment.get("segment_pool_id", (-1, -1)))
    return None


def breaks_its_capture(x: torch.Tensor) -> torch.Tensor:
    """x × 3, synchronizing the whole device while a capture is on (refused, and the capture is invalidated)."""
    y = x * 3
    if torch.cuda.is_current_stream_capturing():
        torch.cuda.synchronize()
    return y


def run() -> dict[str, Any]:
    device = torch.device("cuda")
    x = torch.arange(1 << 20, device=device, dtype=torch.float32)
    graphs = CUDAGraphs()
    before = graphs("before", lambda v: v * 2 + 1, (x,))
    pool_before = graphs.pool
    broken = graphs("broken", breaks_its_capture, (x,))
    again = graphs("broken", breaks_its_capture, (x,))
    capturing_after = torch.cuda.is_current_stream_capturing()
    large = torch.full((1 << 26,), 7.0, device=device)  # 256 MiB: a new segment
    small = torch.full((1000,), 5.0, device=device)  # from a cached block, if any
    after = graphs("after", lambda v: v - 4, (x,))
    replays = [graphs("before", lambda v: v * 2 + 1, (x,)), graphs("after", lambda v: v - 4, (x,))]
    torch.cuda.synchronize()
    return {
        "torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
        "before_right": bool(torch.equal(before, x * 2 + 1)),
        "broken_served_right": bool(torch.equal(broken, x * 3) and torch.equal(again, x * 3)),
        "broken_key_given_up": "broken" in graphs.failed and "broken" not in graphs.graphs,
        "stream_capturing_after_failure": capturing_after,
        "fresh_pool_after_failure": graphs.pool is not None and graphs.pool != pool_before,
        "large_allocation_pool": pool_of(large), "small_allocation_pool": pool_of(small),
        "after_right": bool(torch.equal(after, x - 4)),
        "replays_right": bool(torch.equal(replays[0], x * 2 + 1) and torch.equal(replays[1], x - 4)),
        "allocations_untouched_by_replays": bool((large == 7).all() and (small == 5).all()),
    }


def main() -> None:
    args = probes.parse(probes.parser(__doc__), lambda args: [
        None if torch.cuda.is_available() else "needs a CUDA GPU: the failure it checks is a CUDA graph capture's"])
    found = run()
    found["safe"] = (found["before_right"] and found["broken_served_right"] and found["broken_key_given_up"]
                     and not found["stream_capturing_after_failure"] and found["after_right"]
                     and found["replays_right"] and found["allocations_untouched_by_replays"]
                     and found["large_allocation_pool"] == DEFAULT_POOL
                     and found["small_allocation_pool"] == DEFAULT_POOL)
    probes.report(found, args.out)
    sys.exit(0 if found["safe"] else 1)


if __name__ == "__main__":
    main()
