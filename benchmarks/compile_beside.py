"""Rendering beside a compile, on a GPU: what the thread that renders meets while another thread compiles.

The bot renders in one thread and compiles new shapes in another. While a compile traces with torch.fx, torch patches
`nn.Module.__call__` for every thread, and torch before 2.14 raises its tracing flag for every thread too (torch issue
126024): a compiled function called in the rendering thread then refuses to run, and a module called during a plain
`torch.fx` trace goes into that trace. `t2v.compiled.compile_in_background` is the project's answer
(docs/perf-notes.md row 41). This times two phases of the same length on a small convolutional network: in each, one
thread compiles fresh functions one after another (inductor, each a new shape) while this thread calls a compiled
function and the eager network as fast as it can; the first phase as torch comes, the second after
`compile_in_background()`. It counts the calls, the failures by message, and the calls that saw the tracing flag.

GPU:  python benchmarks/compile_beside.py --seconds 40 --out OUT/compile_beside.json
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/compile_beside.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks import probes  # noqa: E402
from t2v.compiled import compile_in_background, compile_static, fx_tracing_seen  # noqa: E402

log = logging.getLogger("compile_beside")


def network(device: torch.device) -> nn.Module:
    """A few GroupNorm + SiLU + 3×3 convolution blocks: the decoder's kind of work, small enough to compile fast."""
    layers: list[nn.Module] = []
    for _ in range(4):
        layers += [nn.GroupNorm(8, 64), nn.SiLU(), nn.Conv2d(64, 64, 3, padding=1)]
    return nn.Sequential(*layers).to(device, torch.float16).eval()


def phase(net: nn.Module, compiled: Any, x: torch.Tensor, seconds: float, first_size: int) -> dict[str, Any]:
    """`seconds` of calls in this thread while another compiles new shapes of `net`; what the calls met."""
    stop = threading.Event()
    compiles: list[float] = []

    def compile_new_shapes() -> None:
        size = first_size
        while not stop.is_set():
            started = time.perf_counter()
            fn = compile_static(net, "inductor", None)
            with torch.no_grad():
                fn(torch.randn(1, 64, size, size, device=x.device, dtype=x.dtype))
            compiles.append(time.perf_counter() - started)
            size += 1

    thread = threading.Thread(target=compile_new_shapes, name="compile", daemon=True)
    failures: collections.Counter[str] = collections.Counter()
    calls = seen = 0
    thread.start()
    ends = time.perf_counter() + seconds
    with torch.no_grad():
        while time.perf_counter() < ends:
            for fn in (compiled, net):
                calls += 1
                seen += fx_tracing_seen()
                try:
                    fn(x)
                except Exception as error:  # what the rendering thread would have failed a job with
                    failures[f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"] += 1
            torch.cuda.synchronize()
    stop.set()
    thread.join()
    return {"calls": calls, "failures": dict(failures), "calls_seeing_the_tracing_flag": seen,
            "compiles": len(compiles), "compile_s": [round(s, 1) for s in compiles]}


def main() -> None:
    made = probes.parser(__doc__)
    made.add_argument("--seconds", type=float, default=40.0, help="the length of each phase")
    args = probes.parse(made, lambda args: [
        None if args.seconds > 0 else f"--seconds {args.seconds:g}: give a positive length for each phase",
        None if torch.cuda.is_available() else "needs a CUDA GPU: it times rendering beside inductor's GPU compiles"])
    device = torch.device("cuda")
    net = network(device)
    x = torch.randn(4, 64, 32, 32, device=device, dtype=torch.float16)
    compiled = compile_static(net, "inductor", None)
    with torch.no_grad():
        compiled(x)
    found: dict[str, Any] = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
                             "flag_per_thread": hasattr(torch.fx._symbolic_trace, "_get_is_fx_tracing")}
    found["as_torch_comes"] = phase(net, compiled, x, args.seconds, 40)
    compile_in_background()
    found["after_compile_in_background"] = phase(net, compiled, x, args.seconds, 80)
    probes.report(found, args.out)
    sys.exit(1 if found["after_compile_in_background"]["failures"] else 0)


if __name__ == "__main__":
    main()
