"""The fused UNet served at every input shape: compiled where a compiled version is ready, eager meanwhile.

`FastUNet` answers a call of any shape at once. A shape with no compiled version yet runs the fused eager UNet
(t2v.fast's modules; on GPUs behind a CUDA graph, ~1.7× the compiled time) while the compiled version is built,
then swaps it in at the next call of that shape. Where it is built is the caller's choice: with no
`request_compile`, in the calling thread at first use (the CLI, the benchmark); with one (told of every eager call),
wherever the caller runs `compile_shape` (the bot: a background thread, so no job waits for a compile, and the
rendering thread never traces or compiles). Compiled functions and CUDA graphs are kept for at most `max_shapes`
of each (least recently used goes), so a server seeing hundreds of shapes holds a bounded set.

`JitCompiler` is torch.compile with static shapes over a function with a code object of its own per shape, so
dynamo's recompile limit (counted per code object) never decides, and a forgotten shape's compiled code goes with
its function. (Dynamic shapes were measured and not kept: docs/perf-notes.md.)
"""

from __future__ import annotations

import contextlib
import logging
import time
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

log = logging.getLogger(__name__)

Shape = tuple[tuple[int, ...], ...]  # the shapes of one UNet call's (x, t, context)
UNetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
MAX_SHAPES = 8  # compiled shapes and CUDA graphs kept, each (docs/benchmarks.md measures their memory)
GIVE_UP_AFTER = 2  # failed CUDA graph captures of one key before it runs without a graph for good
TOKENS = 77  # CLIP's context length: the text embedding's second dimension in every published model
# A caller that renders in one thread and compiles in another (the bot) hands t2v one lock per GPU (any context
# manager: `gpu_lock`), and CUDA graph captures and the GPU work that breaks a capture take turns under it. A capture
# is invalidated when another thread synchronizes the whole device or draws random numbers on it; the first run of a
# compiled function synchronizes (inductor times its Triton configs, cuDNN its algorithms), and so does inductor's
# max-autotune while it compiles. On an H200 the bot's background compiles broke the rendering thread's captures in
# exactly these ways (docs/perf-notes.md row 38). It must be re-entrant where a capture's warm-up can be a compiled
# function's first run in the same thread (compiling at first use). t2v itself starts no threads: without a lock,
# nothing waits.
GpuLock = AbstractContextManager[Any]
T = TypeVar("T")
MODULE_CALL = nn.Module.__call__  # as torch defines it: a thread's torch.fx trace replaces it while it lasts
TRACE_WAIT_S = 30.0  # the longest wait for other threads' torch.fx traces to end (make_fx's last seconds)


def compile_in_background() -> None:
    """Make this process safe for compiling in one thread while another renders (FastUNet with `request_compile`).

    While torch.fx traces (every compile does, for seconds), it patches `nn.Module.__call__` for all threads, and
    torch before 2.14 (2.11 on the H200 machines) also raises its tracing flag for all threads (torch issue 126024).
    On an H200 the bot's served runs lost videos to both (docs/perf-notes.md row 41): a compiled decoder called in
    the rendering thread while the compile thread traced refused to run ("Detected that you are using FX to
    symbolically trace a dynamo-optimized function"), and modules called by an eager decode or an eager graph's
    capture during a plain torch.fx trace (not make_fx's, which just calls them) went into that trace and failed
    ("module is not installed as a submodule"). Here a compiled function that finds the flag raised runs its Python
    code instead (the same result, eager speed, for that call); a compiled shape's graph is captured at a call that
    does not see the flag (FastUNet: until then it is served as before its compile); a capture that fails is tried
    again at the next call (CUDAGraphs); and inductor's plain trace of its loop interpreter, made once per process,
    is made now, before any thread renders. On torch 2.11 one more plain trace came during the first compile of both
    served runs, not identified yet (benchmarks/fx_traces.py lists a compile's traces): an eager decode that meets
    one decodes again once no trace is left (CompiledDecoder), as does the call whose capture failed."""
    import torch._dynamo.config as dynamo
    from torch._inductor import loop_body

    dynamo.error_on_nested_fx_trace = False
    trace_once = getattr(getattr(loop_body, "InterpreterShim", None), "_dummy_gm", None)
    if trace_once is not None:  # cached for the process after its first call
        trace_once()


def after_other_traces() -> None:
    """Return once no thread's torch.fx trace patches `nn.Module.__call__` (at most TRACE_WAIT_S): a module call
    made then cannot go into another thread's trace. Only for retrying a call that did (compile_in_background)."""
    deadline = time.monotonic() + TRACE_WAIT_S
    while nn.Module.__call__ is not MODULE_CALL and time.monotonic() < deadline:
        time.sleep(0.005)


def past_other_traces(call: Callable[[], T], what: str) -> T:
    """`call()`, made again once no other thread's torch.fx trace is left if a module it called went into one
    ("module is not installed as a submodule": compile_in_background). Only for calls that change no state: an eager
    decode, an eager UNet call."""
    try:
        return call()
    except NameError as error:
        if "not installed as a submodule" not in str(error):  # not a module call lost to another thread's trace
            raise
        log.warning("%s met another thread's torch.fx trace; running it again once that has ended", what,
                    exc_info=True)
        after_other_traces()
        return call()


def fx_tracing_seen() -> bool:
    """Whether torch.fx's tracing flag is up as this thread sees it. t2v never traces in a thread that renders, so
    on torch versions that keep the flag for the whole process it means another thread's compile is tracing."""
    tracer = torch.fx._symbolic_trace
    seen = getattr(tracer, "_get_is_fx_tracing", None)  # torch 2.14: per thread, and no warning when asked
    return bool(seen() if seen is not None else tracer.is_fx_tracing())


def video_shape(cfg: Any, batch: int, frames: int, height: int, width: int, guided: bool = True) -> Shape:
    """The UNet call's input shapes for `batch` videos of `frames` × `height` × `width` pixels: guided, two rows a
    video (classifier-free guidance: unconditional and conditional rows in one call), or at guidance 1.0 one."""
    rows = 2 * batch if guided else batch
    return ((rows, cfg.in_dim, frames, height // 8, width // 8), (rows,), (rows, TOKENS, cfg.context_dim))


def shape_of(inputs: tuple[torch.Tensor, ...]) -> Shape:
    """The shapes of a call's inputs."""
    return tuple(tuple(t.shape) for t in inputs)


def describe(shape: Shape) -> str:
    """'2×16×32×32' (rows × frames × latent height × width) for logs."""
    rows, _, frames, height, width = shape[0]
    return f"{rows}×{frames}×{height}×{width}"


def example_inputs(shape: Shape, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Random inputs of `shape` on `like`'s device and dtype (timesteps: long), drawn on the CPU: the GPU's random
    generator is shared by the process's threads, and one that is capturing a CUDA graph owns it meanwhile."""
    x_shape, t_shape, c_shape = shape
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(x_shape, generator=generator).to(like.device, like.dtype),
            torch.full(t_shape, 999, dtype=torch.long).to(like.device),
            torch.randn(c_shape, generator=generator).to(like.device, like.dtype))


class Compiler(Protocol):
    """Builds the compiled UNet function for one input shape, in the calling thread."""

    def build(self, unet: nn.Module, shape: Shape) -> UNetFn: ...


class JitCompiler:
    """torch.compile, static shapes, fullgraph (no graph breaks), one isolated compile per input shape."""

    def __init__(self, backend: str = "inductor", options: dict | None = None, gpu_lock: GpuLock | None = None) -> None:
        self.backend, self.options = backend, options  # options: inductor settings for these compiles only
        self.gpu_lock = gpu_lock

    def build(self, unet: nn.Module, shape: Shape) -> UNetFn:
        """Compile for `shape` now, in this thread (one call on random inputs traces and compiles)."""
        compiled = compile_static(unet, self.backend, self.options, self.gpu_lock)
        with torch.no_grad():
            compiled(*example_inputs(shape, next(unet.parameters())))
        return compiled


def compile_static(fn: Callable[..., torch.Tensor], backend: str, options: dict | None,
                   gpu_lock: GpuLock | None = None) -> Callable[..., torch.Tensor]:
    """`fn` under torch.compile as t2v compiles (the UNet and the decoder alike): static shapes, one graph, a code
    object of its own; `options` are inductor settings for this compile only (t2v.fast.AUTOTUNE); its GPU work
    takes turns with CUDA graph captures under `gpu_lock` (GpuLock)."""
    return torch.compile(_isolated(fn), backend=_taking_turns(backend, options, gpu_lock), fullgraph=True,
                         dynamic=False)


def _taking_turns(backend: str, options: dict | None, gpu_lock: GpuLock | None) -> Callable[..., Callable[..., Any]]:
    """torch.compile's `backend` with inductor's `options`, taking turns with CUDA graph captures under `gpu_lock`:
    each compiled graph's first run holds it, and so does the whole compile where inductor times kernels on the GPU
    while compiling (max-autotune). Inductor's GEMM padding is off: deciding it times padded GEMMs on random GPU
    inputs in the middle of the compile, which no capture elsewhere survives."""
    compile_graph = torch._dynamo.lookup_backend(backend)
    patches = {"shape_padding": False, **(options or {})}
    timed_while_compiling = bool(patches.get("max_autotune"))

    def compile_in_turn(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., Any]:
        import torch._inductor.config as inductor

        with inductor.patch(patches), _held(gpu_lock if timed_while_compiling else None):
            return _first_run_in_turn(compile_graph(gm, example_inputs), gpu_lock)

    return compile_in_turn


def _held(gpu_lock: GpuLock | None) -> AbstractContextManager[Any]:
    return contextlib.nullcontext() if gpu_lock is None else gpu_lock


def _first_run_in_turn(compiled: Callable[..., Any], gpu_lock: GpuLock | None) -> Callable[..., Any]:
    """`compiled`, a graph compiled by a torch.compile backend, with its first run under `gpu_lock`."""
    if gpu_lock is None:
        return compiled
    ran = False

    def run(*args: Any) -> Any:
        nonlocal ran
        if ran:
            return compiled(*args)
        with gpu_lock:
            out = compiled(*args)
        ran = True
        return out

    run._boxed_call = getattr(compiled, "_boxed_call", False)  # type: ignore[attr-defined]  # boxed: one list of inputs
    return run


def _isolated(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A function calling `fn` with a code object of its own: dynamo keeps compiled code and counts recompiles
    per code object, so each isolated compile starts from zero and goes with its function."""

    def call(*inputs: torch.Tensor) -> torch.Tensor:
        return fn(*inputs)

    return types.FunctionType(call.__code__.replace(), call.__globals__, call.__name__, call.__defaults__,
                              call.__closure__)


class CompiledDecoder:
    """The VAE decode of a chunk of frames, compiled per latent shape and served like the UNet: a shape with no
    compiled version yet decodes eagerly. Compiled versions are built by `compile_for(shape)` for a UNet shape (its
    videos' chunks), through FastUNet.compile_decoder: right after the UNet's compile, in the same thread, at the
    shape's first call in the CLI and the benchmark; in the bot, by its compile thread once no UNet shape waits
    (bot.gpu.compiles). Inductor fuses the decoder's
    GroupNorm+SiLU pairs and launches far fewer kernels: 53 → 29 ms per standard video on an H200
    (docs/perf-notes.md row 26). At most `limit` chunk shapes are kept (the oldest compiled goes first; the
    rendering thread only reads the table, the compiling thread writes it)."""

    def __init__(self, vae: nn.Module, chunk: int, backend: str = "inductor", limit: int = 2 * MAX_SHAPES,
                 gpu_lock: GpuLock | None = None) -> None:
        self.vae, self.chunk, self.backend, self.limit, self.gpu_lock = vae, chunk, backend, limit, gpu_lock
        self.functions: OrderedDict[tuple[int, ...], Callable[[torch.Tensor], torch.Tensor]] = OrderedDict()

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        fn = self.functions.get(tuple(z.shape))
        # contiguous, as compiled: a single video's chunks are strided views, and a stride that differs from the
        # compile's makes dynamo compile again in this thread, first waiting for the compile thread's compile to
        # end (its lock is global): a video took 103 s on the H200 (docs/perf-notes.md row 41)
        if fn is not None:
            return fn(z.contiguous())
        return past_other_traces(lambda: self.vae.decode(z), "an eager decode")

    def chunk_shapes(self, shape: Shape) -> set[tuple[int, ...]]:
        """The latent chunks [n, z, h, w] that decoding the videos of a UNet call of `shape` decodes: the call holds
        2 rows a video under guidance, 1 without; the frames of a batch are decoded `chunk` at a time."""
        rows, channels, frames, height, width = shape[0]
        totals = {max(1, rows // 2) * frames, rows * frames}  # the frames of a batch, as AutoencoderKL splits them
        return {(min(self.chunk, total - start), channels, height, width) for total in totals
                for start in range(0, total, self.chunk)}

    def compile_for(self, shape: Shape) -> None:
        """Compile the decoder for every chunk of `shape`'s videos that has no compiled version, in this thread; a
        chunk whose compile fails stays eager (logged)."""
        like = next(self.vae.parameters())
        for key in sorted(self.chunk_shapes(shape) - set(self.functions)):
            started = time.perf_counter()
            try:
                fn = compile_static(self.vae.decode, self.backend, None, self.gpu_lock)  # never autotuned
                with torch.no_grad():
                    fn(torch.randn(key, generator=torch.Generator().manual_seed(0)).to(like.device, like.dtype))
            except Exception:
                log.exception("compiling the VAE decoder for %s failed; that chunk shape stays eager", key)
                continue
            self.functions[key] = fn
            while len(self.functions) > self.limit:
                self.functions.popitem(last=False)
            log.info("compiled the VAE decoder for %s in %.1f s", "×".join(map(str, key)),
                     time.perf_counter() - started)


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

    A capture that fails costs only its own key: the call runs `fn` without a graph, logged; the key's next call
    tries once more (a module called while another thread's torch.fx trace patches `nn.Module.__call__` fails for
    as long as that trace lasts: compile_in_background), and after a second failure every call of that key runs
    without a graph. Other keys keep their graphs, and the next capture starts a fresh pool. (A failed capture ends
    its pool's routing with it: torch routes an allocation to a capture's pool only while that capture is active,
    checked on an H200 by benchmarks/capture_failure.py.)
    """

    def __init__(self, limit: int = MAX_SHAPES, warmup: int = 2, gpu_lock: GpuLock | None = None) -> None:
        self.limit, self.warmup, self.gpu_lock = limit, warmup, gpu_lock  # captures hold gpu_lock (GpuLock)
        self.graphs: OrderedDict[Hashable, _Graph] = OrderedDict()
        self.failed: OrderedDict[Hashable, int] = OrderedDict()  # failed captures per key, at most `limit` keys
        self.pool: Any = None

    def __call__(self, key: Hashable, fn: UNetFn, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.failed.get(key, 0) >= GIVE_UP_AFTER:
            return fn(*inputs)
        entry = self.graphs.get(key)
        if entry is None:
            waited = time.perf_counter()
            with _held(self.gpu_lock):
                waited = time.perf_counter() - waited
                if waited >= 1.0:  # a compiled function's first run, or an autotuning compile, held the GPU
                    log.info("waited %.1f s for another thread's GPU work before capturing a CUDA graph", waited)
                try:
                    entry = self._capture(key, fn, inputs)
                except Exception:  # a capture that fails must not fail the call
                    self._failed(key)
                    after_other_traces()
                    return fn(*inputs)
        self.graphs.move_to_end(key)
        for static, value in zip(entry.inputs, inputs, strict=True):
            static.copy_(value)
        entry.graph.replay()
        return entry.output.clone()

    def __contains__(self, key: Hashable) -> bool:
        return key in self.graphs

    def drop(self, keep: Callable[[Hashable], bool]) -> None:
        """Forget the graphs whose key `keep` refuses."""
        for key in [key for key in self.graphs if not keep(key)]:
            del self.graphs[key]

    def _failed(self, key: Hashable) -> None:
        """Count a failed capture of `key` (the `limit` most recent such keys are remembered) and leave its pool to
        the graphs already in it."""
        failures = self.failed[key] = self.failed.get(key, 0) + 1
        self.failed.move_to_end(key)
        while len(self.failed) > self.limit:
            self.failed.popitem(last=False)
        self.pool = None
        log.exception("CUDA graph capture for %s failed (%d of %d); this call runs without a CUDA graph%s", key,
                      failures, GIVE_UP_AFTER, ", and so will every later one" if failures >= GIVE_UP_AFTER else "")

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


class Graphed:
    """`fn` replayed from one CUDA graph per input shape when its first input is on a GPU (the text encoder: ≈ 360
    kernel launches a call that the host issues one by one), called as it is elsewhere (a shape whose capture
    failed too)."""

    def __init__(self, fn: Callable[..., torch.Tensor], limit: int = MAX_SHAPES,
                 gpu_lock: GpuLock | None = None) -> None:
        self.fn = fn
        self.graphs = CUDAGraphs(limit, gpu_lock=gpu_lock)

    @torch.no_grad()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if inputs[0].is_cuda:
            return self.graphs(shape_of(inputs), self.fn, inputs)
        return self.fn(*inputs)


class FastUNet(nn.Module):
    """The fused UNet at any shape at once: compiled functions as they become ready, CUDA graphs on GPUs."""

    def __init__(self, unet: nn.Module, compiler: Compiler | None = None, cuda_graphs: bool = True,
                 max_shapes: int = MAX_SHAPES, request_compile: Callable[[Shape], None] | None = None,
                 decoder: CompiledDecoder | None = None, gpu_lock: GpuLock | None = None) -> None:
        super().__init__()
        self.unet, self.cfg = unet, unet.cfg
        self.compiler = compiler  # None: eager (with CUDA graphs) only
        self.max_shapes = max_shapes
        self.request_compile = request_compile  # told of every eager call; None: compile at a shape's first call
        self.decoder = decoder  # compiled for each shape's videos beside the UNet, in the same thread
        self.graphs = CUDAGraphs(max_shapes, gpu_lock=gpu_lock) if cuda_graphs else None  # captures take turns
        self._ready: set[Shape] = set()  # shapes compiled and not forgotten (written by both sides)
        self._finished: deque[tuple[Shape, UNetFn | None]] = deque()  # compile_shape → the calling thread
        # the calling thread's side: what it serves compiled, and what failed
        self._serving: OrderedDict[Shape, UNetFn] = OrderedDict()
        self._failed: set[Shape] = set()

    @torch.no_grad()
    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        inputs = (x.contiguous(), t.contiguous(), context.contiguous())  # the strides compiled (CompiledDecoder)
        shape = shape_of(inputs)
        fn = self._function(shape)
        # the eager path is graphed too: a replay needs one Python call, where eager steps need ~2000 (each op gives
        # up the GIL, and a compile in another thread of the process holds it: 40x slower steps on the H200)
        if self.graphs is None or not x.is_cuda:
            return past_other_traces(lambda: fn(*inputs), "a UNet call without a CUDA graph")
        compiled, eager = (True, shape), (False, shape)
        if fn is self.unet:
            return self.graphs(eager, fn, inputs)
        if compiled not in self.graphs:
            if fx_tracing_seen():
                # another thread's compile is tracing, and a compiled function would run its Python code now: this
                # call is served as before the compile finished, from the eager graph if it is still kept
                if eager in self.graphs:
                    return self.graphs(eager, self.unet, inputs)
                return past_other_traces(lambda: self.unet(*inputs), "an eager UNet call")
            self.graphs.drop(lambda key: key != eager)  # no longer used: the capture below reuses its memory
        return self.graphs(compiled, fn, inputs)

    def run(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The function `forward` picks for these inputs, called without a CUDA graph (for measurements)."""
        return self._function(shape_of((x, t, context)))(x, t, context)

    def compiled(self, shape: Shape) -> bool:
        """Whether a compiled function is ready for `shape` (it serves from the next call on)."""
        return shape in self._ready

    def uncaptured(self) -> list[Shape]:
        """The shapes compiled whose CUDA graph is not captured yet: the next call of each captures it (seconds at a
        large batch: warm-up runs, cuDNN's first-run timing, the capture). Empty off the GPU, without CUDA graphs,
        and while another thread's torch.fx trace is up (a call then serves the shape as before its compile,
        capturing nothing). Safe to ask from any thread; a caller with idle GPU time can call each shape once to
        have it captured before a job needs it."""
        if self.graphs is None or not next(self.unet.parameters()).is_cuda or fx_tracing_seen():
            return []
        return [shape for shape in list(self._ready) if (True, shape) not in self.graphs
                and self.graphs.failed.get((True, shape), 0) < GIVE_UP_AFTER]

    def compile_shape(self, shape: Shape, decoder: bool = True) -> bool:
        """Compile the UNet for `shape` now, in the calling thread (any thread, one at a time); False if that
        failed (the shape stays eager). The next call of that shape picks it up; nothing else waits for it. With
        `decoder` the VAE decoder for its videos' chunks too (compile_decoder); without, the caller does that later:
        a compiled UNet saves ≈ 1.3 s a standard video, a compiled decoder 24 ms (docs/perf-notes.md row 26)."""
        if self.compiler is None:
            return False
        if shape in self._ready:
            return True
        started = time.perf_counter()
        try:
            fn = self.compiler.build(self.unet, shape)
        except Exception:
            log.exception("compiling the UNet for %s failed; that shape stays on the eager path", describe(shape))
            self._finished.append((shape, None))
            return False
        self._ready.add(shape)
        self._finished.append((shape, fn))
        log.info("compiled the UNet for %s in %.1f s", describe(shape), time.perf_counter() - started)
        if decoder:
            self.compile_decoder(shape)
        return True

    def compile_decoder(self, shape: Shape) -> None:
        """Compile the VAE decoder for the chunks of `shape`'s videos, in the calling thread (nothing to do without
        a compiled decoder: CompiledDecoder.compile_for)."""
        if self.decoder is not None:
            self.decoder.compile_for(shape)

    def warmup(self, batch: int, frames: int, height: int, width: int) -> float:
        """Compile and capture one video shape now (pixel sizes; batch counts videos); the seconds it took."""
        started = time.perf_counter()
        shape = video_shape(self.cfg, batch, frames, height, width)
        self.compile_shape(shape)
        self(*example_inputs(shape, next(self.unet.parameters())))
        return time.perf_counter() - started

    def _function(self, shape: Shape) -> UNetFn:
        """The compiled function for `shape` if one is ready, else the eager UNet (asking for a compile)."""
        self._take_finished()
        fn = self._serving.get(shape)
        if fn is not None:
            self._serving.move_to_end(shape)
            return fn
        if self.compiler is None or shape in self._failed:
            return self.unet
        if self.request_compile is None:
            self.compile_shape(shape)
            self._take_finished()
            return self._serving.get(shape, self.unet)
        self.request_compile(shape)  # at every eager call: the scheduler weighs shapes by the eager time they cost
        return self.unet

    def _take_finished(self) -> None:
        """Take up the compiles finished since the last call: serve them, forgetting the least recently used."""
        while self._finished:
            shape, fn = self._finished.popleft()
            if fn is None:
                self._failed.add(shape)
                continue
            self._serving[shape] = fn
            while len(self._serving) > self.max_shapes:
                self._forget(next(iter(self._serving)))

    def _forget(self, shape: Shape) -> None:
        """Stop serving a shape compiled (a later call asks for it again); its function and graph go."""
        del self._serving[shape]
        self._ready.discard(shape)
        if self.graphs is not None:
            self.graphs.drop(lambda key: key != (True, shape))
        log.info("dropped the compiled UNet for %s (least recently used of %d)", describe(shape), self.max_shapes)
