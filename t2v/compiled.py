"""The fused UNet served at every input shape: compiled where a compiled version is ready, eager meanwhile.

`FastUNet` answers a call of any shape at once. A shape with no compiled version yet runs the fused eager UNet
(t2v.fast's modules; on GPUs behind a CUDA graph, ~1.75× the compiled time) while the compiled version is built,
then swaps it in at the next call of that shape. Where it is built is the caller's choice: with no
`request_compile`, in the calling thread at first use (the CLI, the benchmark); with one, wherever the caller runs
`compile_shape` (the bot: a background thread, so no job waits for a compile). Compiled versions and CUDA graphs
are kept for at most `max_shapes` of each (least recently used goes), so a server seeing hundreds of shapes holds a
bounded set. Two compilers:

* `AotCompiler` (the GPU default): AOTInductor. One package serves every shape of two frames or more (batch,
  frames, height and width are dynamic dimensions), is written to the cache folder and loaded from it in seconds
  by later processes; it holds no weights: the UNet's own tensors are lent to it.
* `JitCompiler`: torch.compile with static shapes, each shape compiled in isolation (a code object of its own,
  so dynamo's recompile limit, counted per code object, never decides); any backend ("eager" in CPU tests).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import logging
import os
import time
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

log = logging.getLogger(__name__)

Shape = tuple[tuple[int, ...], ...]  # the shapes of one UNet call's (x, t, context)
UNetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
MAX_SHAPES = 8  # compiled versions and CUDA graphs kept, each (docs/benchmarks.md measures their memory)
TOKENS = 77  # CLIP's context length: the text embedding's second dimension in every published model
DYNAMIC = "every shape of 2+ frames"  # the unit an AOT package with dynamic dimensions serves
FORMAT = 1  # bump when what an AOT package is built from changes outside the hashed sources
MAX_ERROR = 2e-2  # relative L2 distance a loaded package may have from the eager UNet (fp16 compiled: ~1e-3)


def video_shape(cfg: Any, batch: int, frames: int, height: int, width: int) -> Shape:
    """The UNet call's input shapes for `batch` guided videos of `frames` × `height` × `width` pixels."""
    rows = 2 * batch  # classifier-free guidance: conditional and unconditional rows in one call
    return ((rows, cfg.in_dim, frames, height // 8, width // 8), (rows,), (rows, TOKENS, cfg.context_dim))


def shape_of(inputs: tuple[torch.Tensor, ...]) -> Shape:
    """The shapes of a call's inputs."""
    return tuple(tuple(t.shape) for t in inputs)


def describe(shape: Shape) -> str:
    """'2×16×32×32' (rows × frames × latent height × width) for logs."""
    rows, _, frames, height, width = shape[0]
    return f"{rows}×{frames}×{height}×{width}"


def example_inputs(shape: Shape, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Random inputs of `shape` on `like`'s device and dtype (timesteps: long)."""
    x_shape, t_shape, c_shape = shape
    return (torch.randn(x_shape, device=like.device, dtype=like.dtype),
            torch.full(t_shape, 999, device=like.device, dtype=torch.long),
            torch.randn(c_shape, device=like.device, dtype=like.dtype))


class Compiler(Protocol):
    """Builds a compiled UNet function; `unit(shape)` names the shapes one compiled function serves."""

    def unit(self, shape: Shape) -> Hashable: ...

    def compile(self, unet: nn.Module, shape: Shape) -> UNetFn: ...


class JitCompiler:
    """torch.compile, static shapes, one isolated compile per input shape (fullgraph: no graph breaks)."""

    def __init__(self, backend: str = "inductor", mode: str | None = None) -> None:
        self.backend, self.mode = backend, mode

    def unit(self, shape: Shape) -> Hashable:
        """Every shape is its own unit."""
        return shape

    def compile(self, unet: nn.Module, shape: Shape) -> UNetFn:
        """Compile for `shape` now, in this thread (one call on random inputs triggers dynamo and the backend)."""
        compiled = torch.compile(_isolated(unet), backend=self.backend, mode=self.mode, fullgraph=True,
                                 dynamic=False)
        with torch.no_grad():
            compiled(*example_inputs(shape, next(unet.parameters())))
        return compiled


def _isolated(unet: nn.Module) -> UNetFn:
    """A function calling `unet` with a code object of its own: dynamo keeps compiled code and counts recompiles
    per code object, so each isolated compile starts from zero and goes with its function."""

    def call(x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return unet(x, t, context)

    return types.FunctionType(call.__code__.replace(), call.__globals__, call.__name__, call.__defaults__,
                              call.__closure__)


class AotCompiler:
    """AOTInductor packages in `cache_dir`: one for every shape of 2+ frames (dynamic batch, frames, height, width),
    a static one for any other shape; built once per model, torch and GPU, then loaded in seconds."""

    MAX_VIDEOS = 16  # batch dimension's upper bound (BATCH_MAX is at most 16)
    MAX_LATENT = 128  # 1024 pixels / 8: height and width's upper bound

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir) / "aoti"

    def unit(self, shape: Shape) -> Hashable:
        """DYNAMIC for the shapes the dynamic package serves, else the shape itself."""
        rows, _, frames, height, width = shape[0]
        fits = rows // 2 <= self.MAX_VIDEOS and max(height, width) <= self.MAX_LATENT
        return DYNAMIC if frames >= 2 and rows % 2 == 0 and height % 8 == 0 and width % 8 == 0 and fits else shape

    def compile(self, unet: nn.Module, shape: Shape) -> UNetFn:
        """Load the package serving `shape` from the cache, building it first when it is not there."""
        unit = self.unit(shape)
        like = next(unet.parameters())
        path = self.cache_dir / f"unet-{_digest(unet, like, unit)}.pt2"
        if path.exists():
            log.info("loading the compiled UNet (%s) from %s", _unit_name(unit), path)
        else:
            self._build(unet, unit, shape, path)
        return _load(path, unet, like.device, shape)

    def _build(self, unet: nn.Module, unit: Hashable, shape: Shape, path: Path) -> None:
        """Export the UNet (a clone sharing its tensors: export swaps a module's parameters while it traces) and
        compile it into a package, written under a temporary name and renamed when complete."""
        started = time.perf_counter()
        like = next(unet.parameters())
        example = example_inputs(_hint(shape) if unit == DYNAMIC else shape, like)
        clone = copy.deepcopy(unet, memo={id(t): t for t in [*unet.parameters(), *unet.buffers()]})
        dims = _dynamic_dims() if unit == DYNAMIC else None
        with torch.no_grad():
            program = torch.export.export(clone, example, dynamic_shapes=dims)
        exported = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.pt2")
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(partial), inductor_configs={"aot_inductor.package_constants_in_so": False})
        partial.chmod(0o644)  # the cache may be shared with the service's user
        partial.replace(path)
        log.info("compiled the UNet (%s) in %.1f s (export %.1f s) into %s", _unit_name(unit),
                 time.perf_counter() - started, exported - started, path)


def _hint(shape: Shape) -> Shape:
    """The example a dynamic package is traced with: `shape`, with each dynamic size at least 2 (a size of 1 would
    be specialised) — the first shape asked for is the common one, and the kernels' block sizes follow it."""
    rows, channels, frames, height, width = shape[0]
    rows, frames = max(rows, 4), max(frames, 2)
    height, width = max(height, 16), max(width, 16)
    return ((rows, channels, frames, height, width), (rows,), (rows, *shape[2][1:]))


def _dynamic_dims() -> tuple[dict[int, Any], ...]:
    """torch.export's dynamic dimensions: 2·n guided rows, f ≥ 2 frames, latent sizes 8·k (pixels: 64·k)."""
    from torch.export import Dim

    videos = Dim("videos", min=1, max=AotCompiler.MAX_VIDEOS)
    frames = Dim("frames", min=2, max=64)
    height = Dim("height8", min=1, max=AotCompiler.MAX_LATENT // 8)
    width = Dim("width8", min=1, max=AotCompiler.MAX_LATENT // 8)
    rows = 2 * videos
    return {0: rows, 2: frames, 3: 8 * height, 4: 8 * width}, {0: rows}, {0: rows}


def _digest(unet: nn.Module, like: torch.Tensor, unit: Hashable) -> str:
    """What a package depends on: torch, the GPU, dtype, config, unit, the source of the network's modules, and
    the weights (AOTInductor folds expressions of parameters, e.g. a reshaped bias, into the package)."""
    gpu = torch.cuda.get_device_capability(like.device) if like.device.type == "cuda" else "cpu"
    modules = sorted({inspect.getmodule(type(m)) for m in unet.modules()} - {None}, key=lambda m: m.__name__)
    with torch.no_grad():
        sums = torch.stack([torch.stack([t.float().sum(), t.float().norm()]) for t in unet.state_dict().values()])
    parts = [FORMAT, torch.__version__, gpu, like.dtype, getattr(unet, "cfg", None), unit,
             *(inspect.getsource(module) for module in modules), sums.cpu().numpy().tobytes()]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _load(path: Path, unet: nn.Module, device: torch.device, check: Shape) -> UNetFn:
    """A package loaded on `device` with the UNet's own tensors lent to it (no copy), checked against the eager UNet
    on random inputs of shape `check` before it serves anything."""
    index = device.index if device.type == "cuda" and device.index is not None else -1
    model = torch._inductor.aoti_load_package(str(path), run_single_threaded=True, device_index=index)
    tensors = {**dict(unet.named_parameters(remove_duplicate=False)),
               **dict(unet.named_buffers(remove_duplicate=False))}
    names = model.get_constant_fqns()
    missing = [name for name in names if name not in tensors]
    if missing:
        raise RuntimeError(f"the compiled UNet {path} needs tensors this UNet lacks: {missing[:5]}")
    model.load_constants({name: tensors[name] for name in names}, check_full_update=True, user_managed=True)
    with torch.no_grad():
        inputs = example_inputs(check, next(unet.parameters()))
        expected, got = unet(*inputs).float(), model(*inputs).float()
    error = float((got - expected).norm() / expected.norm().clamp_min(1e-12))
    if not error <= MAX_ERROR:
        raise RuntimeError(f"the compiled UNet {path} differs from the eager one by {error:.2e} (limit {MAX_ERROR})")
    return model


def _unit_name(unit: Hashable) -> str:
    return unit if isinstance(unit, str) else describe(unit)  # type: ignore[arg-type]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    output: torch.Tensor
    fn: UNetFn  # kept alive with the graph: its kernels are what the graph replays


class CUDAGraphs:
    """One CUDA graph per key (a function and an input shape), at most `limit` kept (least recently used goes).

    All captures share one memory pool; the output is cloned after each replay, so no caller ever holds memory that
    another graph's replay may overwrite, and a dropped graph's memory serves the next capture.
    """

    def __init__(self, limit: int = MAX_SHAPES, warmup: int = 2) -> None:
        self.limit, self.warmup = limit, warmup
        self.graphs: OrderedDict[Hashable, _Graph] = OrderedDict()
        self.pool: Any = None

    def __call__(self, key: Hashable, fn: UNetFn, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        entry = self.graphs.get(key)
        if entry is None:
            entry = self._capture(key, fn, inputs)
        self.graphs.move_to_end(key)
        for static, value in zip(entry.inputs, inputs, strict=True):
            static.copy_(value)
        entry.graph.replay()
        return entry.output.clone()

    def drop(self, keep: Callable[[Hashable], bool]) -> None:
        """Forget the graphs whose key `keep` refuses."""
        for key in [key for key in self.graphs if not keep(key)]:
            del self.graphs[key]

    def _capture(self, key: Hashable, fn: UNetFn, inputs: tuple[torch.Tensor, ...]) -> _Graph:
        started = time.perf_counter()
        while len(self.graphs) >= self.limit:
            self.graphs.popitem(last=False)
        static = tuple(t.clone() for t in inputs)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):  # cuDNN's autotuning and lazy initialisation, outside the capture
                fn(*static)
        torch.cuda.current_stream().wait_stream(side)
        self.pool = self.pool or torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # thread_local: only this thread's unsafe CUDA calls are refused during the capture; other threads of the
        # process (another GPU's worker, a background compile) go on meanwhile
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            output = fn(*static)
        self.graphs[key] = _Graph(graph, static, output, fn)
        log.info("captured a CUDA graph for %s in %.2f s", key, time.perf_counter() - started)
        return self.graphs[key]


class FastUNet(nn.Module):
    """The fused UNet at any shape at once: compiled versions as they become ready, CUDA graphs on GPUs."""

    def __init__(self, unet: nn.Module, compiler: Compiler | None = None, cuda_graphs: bool = True,
                 max_shapes: int = MAX_SHAPES, request_compile: Callable[[Shape], None] | None = None) -> None:
        super().__init__()
        self.unet, self.cfg = unet, unet.cfg
        self.compiler = compiler  # None: eager (with CUDA graphs) only
        self.max_shapes = max_shapes
        self.request_compile = request_compile  # None: compile in the calling thread at a shape's first call
        self.graphs = CUDAGraphs(max_shapes) if cuda_graphs else None
        self._finished: deque[tuple[Hashable, UNetFn | None]] = deque()  # from compile_shape, in any thread
        self._compiled: OrderedDict[Hashable, UNetFn] = OrderedDict()  # the calling thread's: unit -> function
        self._built: set[Hashable] = set()  # units compiled and kept (compile_shape skips them)
        self._failed: set[Hashable] = set()  # units whose compile failed: they stay eager
        self._asked: set[Hashable] = set()  # units handed to request_compile

    @torch.no_grad()
    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        inputs = (x, t, context)
        shape = shape_of(inputs)
        fn = self._function(shape)
        if self.graphs is not None and x.is_cuda:
            try:
                return self.graphs((fn is not self.unet, shape), fn, inputs)
            except RuntimeError:  # a capture that fails must not fail the job: run without graphs from now on
                log.exception("CUDA graph capture failed; running the UNet without CUDA graphs")
                self.graphs = None
        return fn(*inputs)

    def run(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The function `forward` picks for these inputs, called without a CUDA graph (for measurements)."""
        return self._function(shape_of((x, t, context)))(x, t, context)

    def compiled(self, shape: Shape) -> bool:
        """Whether a compiled version serving `shape` is built (it is used from the next call on)."""
        return self.compiler is not None and self.compiler.unit(shape) in self._built

    def compile_shape(self, shape: Shape) -> bool:
        """Build the compiled version serving `shape` now, in the calling thread (any thread); False if it failed.

        The caller's next call of that shape picks it up; nothing else waits for it.
        """
        if self.compiler is None:
            return False
        unit = self.compiler.unit(shape)
        if unit in self._built:
            return True
        started = time.perf_counter()
        try:
            fn = self.compiler.compile(self.unet, shape)
        except Exception:
            log.exception("compiling the UNet for %s failed; that shape stays on the eager path", describe(shape))
            self._finished.append((unit, None))
            return False
        self._built.add(unit)
        self._finished.append((unit, fn))
        log.info("compiled UNet ready for %s in %.1f s", _unit_name(unit), time.perf_counter() - started)
        return True

    def warmup(self, batch: int, frames: int, height: int, width: int) -> float:
        """Compile and capture one video shape now (pixel sizes; batch counts videos); the seconds it took."""
        started = time.perf_counter()
        shape = video_shape(self.cfg, batch, frames, height, width)
        self.compile_shape(shape)
        self(*example_inputs(shape, next(self.unet.parameters())))
        return time.perf_counter() - started

    def _function(self, shape: Shape) -> UNetFn:
        """The compiled function serving `shape` if one is ready, else the eager UNet (asking for a compile)."""
        self._take_finished()
        if self.compiler is None:
            return self.unet
        unit = self.compiler.unit(shape)
        fn = self._compiled.get(unit)
        if fn is not None:
            self._compiled.move_to_end(unit)
            return fn
        if unit in self._failed:
            return self.unet
        if self.request_compile is None:
            self.compile_shape(shape)
            self._take_finished()
            return self._compiled.get(unit, self.unet)
        if unit not in self._asked:
            self._asked.add(unit)
            self.request_compile(shape)
        return self.unet

    def _take_finished(self) -> None:
        """Take up the compiles finished since the last call: swap them in, evicting the least recently used."""
        while self._finished:
            unit, fn = self._finished.popleft()
            self._asked.discard(unit)
            if fn is None:
                self._failed.add(unit)
                continue
            self._compiled[unit] = fn
            self._compiled.move_to_end(unit)
            if self.graphs is not None:  # the eager graphs of shapes it serves are no longer used
                self.graphs.drop(lambda key, unit=unit: key[0] or self.compiler.unit(key[1]) != unit)
            while len(self._compiled) > self.max_shapes:
                self._evict(next(iter(self._compiled)))

    def _evict(self, unit: Hashable) -> None:
        """Forget a compiled version and its CUDA graphs (a later call of its shapes asks for it again)."""
        del self._compiled[unit]
        self._built.discard(unit)
        if self.graphs is not None:
            self.graphs.drop(lambda key: not key[0] or self.compiler.unit(key[1]) != unit)
        log.info("dropped the compiled UNet for %s (least recently used of %d)", _unit_name(unit), self.max_shapes)
