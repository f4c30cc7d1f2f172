"""Which torch.fx traces a UNet compile makes, and with which tracer: those that module calls of other threads meet.

While `torch.fx.Tracer.trace` runs, torch patches `nn.Module.__call__` for every thread. A tracer that keeps torch's
own `call_module` (a plain `torch.fx` trace) fails a module called from another thread ("module is not installed as a
submodule"); make_fx's tracer just calls the module. The bot renders in one thread while another compiles, so these
traces decide what `t2v.compiled.compile_in_background` must do before rendering starts (docs/perf-notes.md row 41).
This records every trace (its tracer, whether that tracer keeps torch's `call_module`, how long, and where from)
during `compile_in_background()` and then during the compile of one shape of the tiny-random pipeline.

GPU:  python benchmarks/fx_traces.py --out OUT/fx_traces.json
CPU smoke test:  python benchmarks/fx_traces.py --device cpu --backend eager
"""

from __future__ import annotations

import collections
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/fx_traces.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch._dynamo  # noqa: E402  # it wraps Tracer.trace when imported: record around its wrapper
from torch.fx import _symbolic_trace as fx_trace  # noqa: E402

from benchmarks import probes  # noqa: E402
from t2v import TINY_RANDOM, load_pipeline, preflight  # noqa: E402
from t2v.compiled import compile_in_background, video_shape  # noqa: E402
from t2v.fast import optimize  # noqa: E402

log = logging.getLogger("fx_traces")


def recording(trace: Any, into: list[dict[str, Any]]) -> Any:
    """`trace` (torch's own Tracer.trace, not another recorder: a phase's traces belong to it alone), recording each
    call in `into`."""

    def recorded(self: Any, root: Any, concrete_args: Any = None) -> Any:
        started = time.perf_counter()
        try:
            return trace(self, root, concrete_args)
        finally:
            frames = traceback.extract_stack(limit=14)[:-1]
            into.append({"tracer": f"{type(self).__module__}.{type(self).__qualname__}",
                         "plain_call_module": type(self).call_module is fx_trace.Tracer.call_module,
                         "s": round(time.perf_counter() - started, 4),
                         "from": [f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno} {f.name}"
                                  for f in frames[-7:]]})

    return recorded


def summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records grouped by tracer and caller: how many, how long in all."""
    groups: dict[tuple[str, bool, str], list[float]] = collections.defaultdict(list)
    for record in records:
        caller = next((f for f in reversed(record["from"]) if "torch/fx/" not in f), record["from"][-1])
        groups[(record["tracer"], record["plain_call_module"], caller)].append(record["s"])
    return [{"tracer": tracer, "plain_call_module": plain, "caller": caller, "count": len(times),
             "total_s": round(sum(times), 4), "longest_s": max(times)}
            for (tracer, plain, caller), times in sorted(groups.items(), key=lambda item: -len(item[1]))]


def main() -> None:
    made = probes.parser(__doc__)
    made.add_argument("--device", default="cuda")
    made.add_argument("--backend", default="inductor")
    args = probes.parse(made, lambda args: [preflight.device("--device", args.device),
                                            preflight.compile_backend("--backend", args.backend)])
    pipe = load_pipeline(TINY_RANDOM, device=args.device)
    before: list[dict[str, Any]] = []
    compiling: list[dict[str, Any]] = []
    trace = fx_trace.Tracer.trace
    fx_trace.Tracer.trace = recording(trace, before)
    started = time.perf_counter()
    compile_in_background()
    prepare_s = time.perf_counter() - started
    fx_trace.Tracer.trace = recording(trace, compiling)
    optimize(pipe, backend=args.backend, request_compile=lambda shape: None)
    shape = video_shape(pipe.unet.cfg, 1, 4, 64, 64)
    started = time.perf_counter()
    compiled = pipe.unet.compile_shape(shape)
    from torch._inductor import loop_body

    found = {"torch": torch.__version__, "device": args.device, "backend": args.backend,
             "interpreter_shim_dummy_gm": hasattr(getattr(loop_body, "InterpreterShim", None), "_dummy_gm"),
             "compile_in_background_s": round(prepare_s, 2), "traces_in_compile_in_background": summary(before),
             "compiled": compiled, "compile_s": round(time.perf_counter() - started, 1),
             "traces_in_the_compile": summary(compiling)}
    probes.report(found, args.out, {"records": compiling})

if __name__ == "__main__":
    main()
