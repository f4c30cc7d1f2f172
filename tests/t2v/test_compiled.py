"""FastUNet serves every shape at once: eager until a compiled version is ready, bounded, never failing a call.

The compiler is exercised on a small stand-in network with the UNet's call signature (a real torch.compile takes a
second on it instead of half a minute); the pipeline-level tests use tiny-random.
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from t2v.compiled import FastUNet, JitCompiler, describe, example_inputs, video_shape


class Toy(nn.Module):
    """The UNet's signature (x [2n, 4, f, h, w], t [2n], context [2n, 77, d]) in a few small layers."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.cfg = SimpleNamespace(in_dim=4, context_dim=8)
        self.conv = nn.Conv3d(4, 4, 3, padding=1)
        self.proj = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        bias = self.proj(context.mean(1)) + t[:, None].float() / 1000  # [2n, 4]
        return self.conv(x) + bias[:, :, None, None, None]


class FakeCompiler:
    """Stands in for a compiler: the function it builds doubles the output, so a call shows which path served it.
    `fail` lists shapes whose compile raises."""

    def __init__(self, fail: tuple = ()) -> None:
        self.compiled: list = []
        self.fail = fail

    def build(self, unet, shape):
        if shape in self.fail:
            raise RuntimeError("no kernel for this shape")
        self.compiled.append(shape)
        return lambda x, t, context: 2 * unet(x, t, context)



def _shapes(count: int) -> list:
    return [video_shape(Toy().cfg, 1, frames, 64, 64) for frames in range(2, 2 + count)]


def _call(fast: FastUNet, shape):
    inputs = example_inputs(shape, torch.zeros(()))
    return fast(*inputs), fast.unet(*inputs)


def test_a_new_shape_is_served_eager_at_once_and_compiled_from_the_next_call_after_its_compile():
    asked = []
    fast = FastUNet(Toy(), FakeCompiler(), cuda_graphs=False, request_compile=asked.append)
    shape = _shapes(1)[0]
    got, eager = _call(fast, shape)
    assert torch.equal(got, eager) and asked == [shape]
    _call(fast, shape)
    assert asked == [shape, shape]  # told of every eager call: the scheduler weighs shapes by their eager time

    assert fast.compile_shape(shape) and fast.compiled(shape)
    got, eager = _call(fast, shape)
    assert torch.equal(got, 2 * eager)


def test_twelve_shapes_all_answer_and_at_most_max_shapes_compiled_versions_are_kept():
    compiler = FakeCompiler()
    fast = FastUNet(Toy(), compiler, cuda_graphs=False, max_shapes=3, request_compile=lambda shape: None)
    shapes = _shapes(12)
    for shape in shapes:
        _call(fast, shape)
        fast.compile_shape(shape)
        got, eager = _call(fast, shape)
        assert torch.equal(got, 2 * eager)
    assert [fast.compiled(shape) for shape in shapes] == [False] * 9 + [True] * 3
    assert len(compiler.compiled) == 12


def test_the_least_recently_used_shape_goes_first_and_is_asked_for_again_when_it_returns():
    asked = []
    fast = FastUNet(Toy(), FakeCompiler(), cuda_graphs=False, max_shapes=2, request_compile=asked.append)
    a, b, c = _shapes(3)
    for shape in (a, b):
        fast.compile_shape(shape)
    _call(fast, b)
    _call(fast, a)  # a is now the most recently used
    fast.compile_shape(c)
    _call(fast, c)
    assert fast.compiled(a) and fast.compiled(c) and not fast.compiled(b)
    got, eager = _call(fast, b)
    assert torch.equal(got, eager) and asked == [b]  # forgotten: eager again, and asked for again


def test_a_failed_compile_leaves_the_shape_eager_and_is_not_retried(caplog):
    asked = []
    shape = _shapes(1)[0]
    fast = FastUNet(Toy(), FakeCompiler(fail=(shape,)), cuda_graphs=False, request_compile=asked.append)
    _call(fast, shape)
    with caplog.at_level(logging.ERROR, logger="t2v.compiled"):
        assert not fast.compile_shape(shape)
    assert f"compiling the UNet for {describe(shape)} failed" in caplog.text
    for _ in range(2):
        got, eager = _call(fast, shape)
        assert torch.equal(got, eager)
    assert asked == [shape]  # before the compile; a failed shape is not asked for again


def test_without_a_scheduler_a_new_shape_compiles_in_the_calling_thread_at_its_first_call():
    compiler = FakeCompiler()
    fast = FastUNet(Toy(), compiler, cuda_graphs=False)
    got, eager = _call(fast, _shapes(1)[0])
    assert torch.equal(got, 2 * eager) and compiler.compiled == _shapes(1)


def test_isolated_torch_compiles_never_meet_dynamo_s_recompile_limit():
    import torch._dynamo

    fast = FastUNet(Toy(), JitCompiler(backend="eager"), cuda_graphs=False)
    # torch's own patch, not monkeypatch: pytest 9.2's undo deletes the setting, which hides it from dynamo for good
    with torch._dynamo.config.patch(recompile_limit=1):
        for shape in _shapes(3):  # three static shapes against a limit of one recompile per code object
            got, eager = _call(fast, shape)
            assert fast.compiled(shape)
            torch.testing.assert_close(got, eager)


def test_optimize_serves_a_pipeline_of_any_shape_through_the_fast_unet(tiny_pipe):
    import copy

    from t2v import GenerationRequest
    from t2v.fast import optimize

    pipe = copy.deepcopy(tiny_pipe)
    asked = []
    optimize(pipe, backend="eager", request_compile=asked.append)
    assert isinstance(pipe.unet, FastUNet) and isinstance(pipe.unet.compiler, JitCompiler)
    request = GenerationRequest("a cat", seed=1, steps=2, frames=3, width=64, height=128)
    plain = tiny_pipe.generate(request)
    fast = pipe.generate(request)
    assert set(asked) == {((2, 4, 3, 16, 8), (2,), (2, 77, 64))} and len(asked) == 2  # told of both eager steps
    assert float((fast.latents - plain.latents).norm() / plain.latents.norm()) <= 1e-5


def test_the_fused_tiny_unet_compiles_as_one_graph_and_agrees(tiny_pipe):
    import copy

    from t2v.fast import fuse

    unet = copy.deepcopy(tiny_pipe.unet)
    fast = FastUNet(fuse(unet), JitCompiler(backend="aot_eager"), cuda_graphs=False)  # fullgraph
    shape = video_shape(unet.cfg, 1, 3, 64, 128)
    inputs = example_inputs(shape, torch.zeros(()))
    with torch.no_grad():
        torch.testing.assert_close(fast(*inputs), tiny_pipe.unet(*inputs), rtol=1e-4, atol=1e-5)
    assert fast.compiled(shape)


def test_the_decoder_s_chunks_cover_every_video_a_unet_shape_can_hold():
    from t2v.compiled import CompiledDecoder

    decoder = CompiledDecoder(nn.Identity(), chunk=4)
    # 2 rows: one guided video (10 frames: chunks of 4, 4, 2) or two unguided ones (20 frames: 4 × 5)
    assert decoder.chunk_shapes(((2, 4, 10, 8, 16), (2,), (2, 77, 8))) == {(4, 4, 8, 16), (2, 4, 8, 16)}
    assert decoder.chunk_shapes(((2, 4, 3, 8, 8), (2,), (2, 77, 8))) == {(3, 4, 8, 8), (4, 4, 8, 8), (2, 4, 8, 8)}
    assert decoder.chunk_shapes(((1, 4, 1, 8, 8), (1,), (1, 77, 8))) == {(1, 4, 8, 8)}


def test_optimize_compiles_the_decoder_beside_the_unet_in_the_compile_thread_and_decodes_eager_meanwhile(tiny_pipe):
    import copy

    from t2v import GenerationRequest
    from t2v.fast import optimize

    pipe = copy.deepcopy(tiny_pipe)
    asked = []
    optimize(pipe, backend="eager", request_compile=asked.append)
    request = GenerationRequest("a cat", seed=1, steps=2, frames=3, width=64, height=128)
    eager = pipe.generate(request)  # the compile was asked for, not run: UNet and decoder eager
    assert pipe.chunk_decoder is not None and not pipe.chunk_decoder.functions
    assert pipe.unet.compile_shape(asked[0])  # what the bot's compile thread runs
    assert set(pipe.chunk_decoder.functions) == {(3, 4, 16, 8), (4, 4, 16, 8), (2, 4, 16, 8)}  # 3 frames
    # of a guided video; or 6 of two unguided ones: 4 + 2
    compiled = pipe.generate(request)
    assert float((compiled.latents - eager.latents).norm() / eager.latents.norm()) <= 1e-5
    assert np.abs(compiled.frames.astype(int) - eager.frames.astype(int)).max() <= 1  # uint8 rounding


def test_the_compiled_decoder_gets_contiguous_chunks_as_it_was_compiled_for():
    from t2v.compiled import CompiledDecoder

    decoder, seen = CompiledDecoder(nn.Identity(), chunk=4), []
    decoder.functions[(4, 4, 8, 8)] = lambda z: seen.append(z.stride()) or z
    latents = torch.randn(1, 4, 8, 8, 8)  # one video: its chunks are strided views of the latents
    chunks = latents.permute(0, 2, 1, 3, 4).reshape(8, 4, 8, 8).split(4)
    assert not chunks[0].is_contiguous()
    out = [decoder(chunk) for chunk in chunks]
    assert seen == [(256, 64, 8, 1)] * 2 and all(torch.equal(o, c) for o, c in zip(out, chunks, strict=True))


def test_the_fast_unet_calls_its_functions_with_contiguous_inputs():
    seen = []

    class Recording(FakeCompiler):
        def build(self, unet, shape):
            fn = super().build(unet, shape)
            return lambda *inputs: seen.append([t.is_contiguous() for t in inputs]) or fn(*inputs)

    fast = FastUNet(Toy(), Recording(), cuda_graphs=False)
    shape = _shapes(1)[0]
    x, t, context = example_inputs(shape, torch.zeros(()))
    strided = x.transpose(3, 4).contiguous().transpose(3, 4)  # the same shape, other strides
    assert not strided.is_contiguous()
    assert torch.equal(fast(strided, t, context), 2 * fast.unet(x, t, context))
    assert seen == [[True, True, True]]


def test_fx_tracing_is_seen_inside_a_trace_of_this_thread_only_while_it_lasts():
    from t2v.compiled import fx_tracing_seen

    seen = []

    def traced(x):
        seen.append(fx_tracing_seen())
        return x + 1

    torch.fx.symbolic_trace(traced)
    assert seen == [True] and not fx_tracing_seen()


def test_compiling_in_the_background_lets_compiled_functions_run_through_another_thread_s_trace(tiny_pipe):
    import copy

    import torch._dynamo.config as dynamo
    from torch._inductor.loop_body import InterpreterShim

    from t2v.fast import optimize

    with dynamo.patch(error_on_nested_fx_trace=True):
        optimize(copy.deepcopy(tiny_pipe), backend="eager")  # compiling at first use, in the rendering thread
        assert dynamo.error_on_nested_fx_trace
        optimize(copy.deepcopy(tiny_pipe), backend="eager", request_compile=lambda shape: None)
        assert not dynamo.error_on_nested_fx_trace  # a compiled function runs its Python code through a trace
    assert InterpreterShim._dummy_gm.cache_info().currsize == 1  # inductor's own trace is done and kept


def _an_eager_decode():
    from t2v.compiled import CompiledDecoder

    decoder = CompiledDecoder(nn.Sequential(nn.Conv2d(4, 3, 1)), chunk=2)
    decoder.vae.decode = decoder.vae.forward
    z = torch.randn(2, 4, 4, 4)
    return lambda: decoder(z), lambda: decoder.vae(z), "an eager decode"


def _a_unet_call_without_a_graph():  # on the CPU, or with CUDA graphs off: what served run 7's CPU twin lost a job to
    fast = FastUNet(Toy(), FakeCompiler(), cuda_graphs=False, request_compile=lambda shape: None)
    inputs = example_inputs(_shapes(1)[0], torch.zeros(()))
    # forward itself: in the served run the trace began while the sampler's call of the UNet was under way
    return lambda: fast.forward(*inputs), lambda: fast.unet(*inputs), "a UNet call without a CUDA graph"


@pytest.mark.parametrize("made", [_an_eager_decode, _a_unet_call_without_a_graph])
def test_an_eager_call_that_meets_another_thread_s_fx_trace_runs_again_once_it_has_ended(made, monkeypatch, caplog):
    import t2v.compiled as compiled

    call, expected, what = made()
    inside, release = threading.Event(), threading.Event()

    def traced(x):  # a plain torch.fx trace: nn.Module.__call__ is patched for every thread while it lasts
        inside.set()
        release.wait()
        return x + 1

    tracer = threading.Thread(target=torch.fx.symbolic_trace, args=(traced,), daemon=True)
    tracer.start()
    inside.wait()
    waits = []

    def sleep(seconds):  # the wait for the trace to end: end it instead of sleeping
        waits.append(seconds)
        release.set()
        tracer.join()

    monkeypatch.setattr(compiled.time, "sleep", sleep)
    try:
        with caplog.at_level(logging.WARNING, logger="t2v.compiled"):
            out = call()
    finally:
        release.set()  # a failed assertion must not leave the trace (and the test run) waiting
    assert torch.equal(out, expected()) and len(waits) == 1
    assert f"{what} met another thread's torch.fx trace; running it again once that has ended" in caplog.text
    assert "module is not installed as a submodule" in caplog.text


def test_an_eager_decode_s_own_name_error_is_not_retried(monkeypatch):
    import t2v.compiled as compiled
    from t2v.compiled import CompiledDecoder

    calls = []

    def decode(z):
        calls.append(z)
        raise NameError("name 'upsample' is not defined")  # a bug, not another thread's trace

    decoder = CompiledDecoder(nn.Identity(), chunk=2)
    decoder.vae.decode = decode
    monkeypatch.setattr(compiled, "after_other_traces", lambda: pytest.fail("waited for traces"))
    with pytest.raises(NameError, match="upsample"):
        decoder(torch.zeros(2, 4, 4, 4))
    assert len(calls) == 1


def test_the_wait_for_other_threads_traces_gives_up_after_its_limit(monkeypatch):
    import t2v.compiled as compiled

    clock = iter([0.0, 1.0, compiled.TRACE_WAIT_S + 1])
    monkeypatch.setattr(compiled.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(compiled.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(nn.Module, "__call__", lambda self, *args: None)  # a trace that never ends
    compiled.after_other_traces()  # returns at the limit
    monkeypatch.undo()
    compiled.after_other_traces()  # nothing patched: returns at once, without reading the clock


def test_a_decoder_compile_that_fails_leaves_that_chunk_eager(caplog, monkeypatch):
    from t2v.compiled import CompiledDecoder

    decoder = CompiledDecoder(nn.Conv2d(4, 3, 1), chunk=2)
    decoder.vae.decode = decoder.vae.forward
    monkeypatch.setattr(torch, "compile", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("no kernel")))
    with caplog.at_level(logging.ERROR, logger="t2v.compiled"):
        decoder.compile_for(((2, 4, 2, 4, 4), (2,), (2, 77, 8)))
    assert not decoder.functions and "stays eager" in caplog.text
    z = torch.randn(2, 4, 4, 4)
    assert torch.equal(decoder(z), decoder.vae(z))


def test_autotune_hands_inductor_its_max_autotune_options_for_the_unet_only(tiny_pipe, monkeypatch):
    import copy

    import torch._inductor.config as inductor

    from t2v.fast import AUTOTUNE, optimize

    pipe = copy.deepcopy(tiny_pipe)
    with pytest.raises(ValueError, match="autotune=True needs backend='inductor' \\(got 'eager'\\)"):
        optimize(pipe, backend="eager", autotune=True)
    lock = threading.RLock()
    optimize(pipe, autotune=True, request_compile=lambda shape: None, gpu_lock=lock)  # nothing compiles until asked
    assert pipe.unet.compiler.options is AUTOTUNE
    assert pipe.unet.compiler.gpu_lock is lock and pipe.chunk_decoder.gpu_lock is lock
    seen = []  # inductor's settings as each graph compiles, and whether the compile held the GPU lock

    def backend(gm, example_inputs):
        seen.append((inductor.max_autotune, inductor.shape_padding, held_by_another_thread(lock)))
        return gm.forward

    monkeypatch.setattr(torch._dynamo, "lookup_backend", lambda name: backend)
    assert pipe.unet.compile_shape(video_shape(pipe.unet.unet.cfg, 1, 3, 64, 128))
    # the UNet autotuned, timing kernels while it compiles (so it holds the lock); then each decoder chunk, plainly
    assert seen[0] == (True, False, True) and len(seen) > 1 and set(seen[1:]) == {(False, False, False)}
    assert not inductor.max_autotune and inductor.shape_padding  # the settings were for those compiles only
    plain = copy.deepcopy(tiny_pipe)
    optimize(plain, request_compile=lambda shape: None)
    assert plain.unet.compiler.options is None


def held_by_another_thread(lock) -> bool:
    """Whether `lock` is held by a thread other than one just started to try it (the caller's, say)."""
    got = []

    def attempt() -> None:
        got.append(lock.acquire(blocking=False))
        if got[0]:
            lock.release()

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return not got[0]


def test_a_compiled_graph_first_runs_under_the_capture_lock_then_freely():
    from t2v.compiled import _first_run_in_turn

    lock = threading.RLock()
    runs = _first_run_in_turn(lambda: held_by_another_thread(lock), lock)
    assert runs() is True and runs() is False and runs() is False  # its first run only: timing configs, syncing
    assert not held_by_another_thread(lock)

    def boxed(args):  # inductor's convention: one list of inputs
        return sum(args)

    boxed._boxed_call = True
    wrapped = _first_run_in_turn(boxed, lock)
    assert wrapped._boxed_call and wrapped([1, 2]) == 3 and wrapped([3, 4]) == 7
    failing = _first_run_in_turn(lambda: 1 / 0, lock)
    with pytest.raises(ZeroDivisionError):
        failing()
    assert not held_by_another_thread(lock)  # released when the first run raised
    assert _first_run_in_turn(boxed, None) is boxed  # no lock given (one thread does everything): nothing added


def test_a_backend_compiles_through_the_turn_taking_wrapper():
    from t2v.compiled import compile_static

    lock = threading.RLock()
    # aot_eager: dynamo and AOT autograd, and inductor's boxed calling convention, without a C++ compiler (a fresh
    # machine has none)
    fn = compile_static(lambda x, y: torch.sin(x) @ y + 1, "aot_eager", None, lock)
    x, y = torch.randn(8, 8), torch.randn(8, 8)
    for _ in range(2):  # the first run under the lock, then the plain one: both boxed calls
        torch.testing.assert_close(fn(x, y), torch.sin(x) @ y + 1)
    assert not held_by_another_thread(lock)


def test_a_graph_capture_holds_the_capture_lock_and_says_when_it_waited_for_it(monkeypatch, caplog):
    import t2v.compiled as compiled
    from t2v.compiled import CUDAGraphs, _Graph

    lock = threading.RLock()
    graphs, held = CUDAGraphs(gpu_lock=lock), []

    def capture(key, fn, inputs):
        held.append(held_by_another_thread(lock))
        graphs.graphs[key] = _Graph(SimpleNamespace(replay=lambda: None), (torch.zeros(2),), torch.ones(2), fn)
        return graphs.graphs[key]

    monkeypatch.setattr(graphs, "_capture", capture)
    clock = iter([10.0, 12.5])  # asked for the lock at 10 s, got it at 12.5 s
    monkeypatch.setattr(compiled.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="t2v.compiled"):
        assert torch.equal(graphs("key", torch.neg, (torch.zeros(2),)), torch.ones(2))
    assert "waited 2.5 s for another thread's GPU work" in caplog.text
    graphs("key", torch.neg, (torch.zeros(2),))  # a replay: no capture, no lock (and no clock: it is spent)
    assert held == [True] and not held_by_another_thread(lock)


class OnGpu(SimpleNamespace):
    """Stands in for a GPU tensor where only `is_cuda` and `shape` are read."""

    is_cuda = True


class FakeGraphs:
    """Stands in for CUDAGraphs: replays a 'graph' per key."""

    def __init__(self) -> None:
        self.keys: list = []

    def __call__(self, key, fn, inputs):
        self.keys.append(key)
        return ("replayed", fn(*inputs))


def test_graphed_replays_gpu_inputs_by_shape_and_calls_cpu_ones_as_they_are():
    from t2v.compiled import Graphed

    graphed = Graphed(lambda ids: "encoded")
    graphed.graphs = FakeGraphs()
    assert graphed(torch.zeros(2, 77, dtype=torch.long)) == "encoded"  # a CPU tensor: no graph
    assert graphed(OnGpu(shape=(2, 77))) == ("replayed", "encoded")
    assert graphed(OnGpu(shape=(8, 77))) == ("replayed", "encoded")
    assert graphed.graphs.keys == [((2, 77),), ((8, 77),)]  # one graph per prompt count


def _recording_captures(graphs, broken=()):
    """Stand in for `graphs._capture`: record each capture; raise for keys starting with one of `broken`."""
    from t2v.compiled import _Graph

    captured = []

    def capture(key, fn, inputs):
        captured.append(key)
        if str(key).startswith(broken) and broken:
            raise NameError("module is not installed as a submodule")  # a module call in another thread's trace
        static = tuple(value.clone() for value in inputs)
        graphs.graphs[key] = _Graph(SimpleNamespace(replay=lambda: None), static, torch.ones(2), fn)
        return graphs.graphs[key]

    return captured, capture


def test_a_capture_that_fails_is_tried_once_more_then_its_key_alone_runs_without_a_graph(monkeypatch, caplog):
    from t2v.compiled import CUDAGraphs

    graphs = CUDAGraphs(limit=2)
    graphs.pool = "pool of the failed capture"
    captured, capture = _recording_captures(graphs, broken=("broken",))
    monkeypatch.setattr(graphs, "_capture", capture)
    x = torch.full((2,), 3.0)
    with caplog.at_level(logging.ERROR, logger="t2v.compiled"):
        assert torch.equal(graphs("broken 1", torch.neg, (x,)), -x)  # the call itself is served, without a graph
        assert graphs.pool is None  # the next capture starts a fresh pool
        assert torch.equal(graphs("broken 1", torch.neg, (x,)), -x)  # tried once more: the failure may be brief
        assert torch.equal(graphs("broken 1", torch.neg, (x,)), -x)  # not again
    assert "CUDA graph capture for broken 1 failed (1 of 2); this call runs without a CUDA graph\n" in caplog.text
    assert "failed (2 of 2); this call runs without a CUDA graph, and so will every later one" in caplog.text
    assert torch.equal(graphs("fine", torch.neg, (x,)), torch.ones(2))  # other keys are still captured and replayed
    assert torch.equal(graphs("fine", torch.neg, (x,)), torch.ones(2))
    assert captured == ["broken 1", "broken 1", "fine"]
    for key in ("broken 2", "broken 3"):
        graphs(key, torch.neg, (x,))
    assert list(graphs.failed) == ["broken 2", "broken 3"]  # at most `limit` remembered: the oldest is tried again
    graphs("broken 1", torch.neg, (x,))
    assert captured == ["broken 1", "broken 1", "fine", "broken 2", "broken 3", "broken 1"]


def test_a_shape_compiled_while_another_thread_traces_keeps_its_eager_graph_until_its_own_is_captured(monkeypatch):
    import t2v.compiled as compiled
    from t2v.compiled import CUDAGraphs

    fast = FastUNet(Toy(), FakeCompiler(), cuda_graphs=False, request_compile=lambda shape: None)
    fast.graphs = CUDAGraphs()
    captured, capture = _recording_captures(fast.graphs)
    monkeypatch.setattr(fast.graphs, "_capture", capture)
    shape = _shapes(1)[0]
    x, t, context = example_inputs(shape, torch.zeros(()))
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))  # what forward reads of a GPU
    tracing = [False]
    monkeypatch.setattr(compiled, "fx_tracing_seen", lambda: tracing[0])

    fast(x, t, context)  # eager, from its graph
    assert fast.compile_shape(shape)
    tracing[0] = True  # the compile thread traces the next shape: the compiled function would run eagerly
    fast(x, t, context)
    assert captured == [(False, shape)] and (False, shape) in fast.graphs  # served from the eager graph
    tracing[0] = False
    fast(x, t, context)
    assert captured == [(False, shape), (True, shape)]
    assert (False, shape) not in fast.graphs and (True, shape) in fast.graphs  # the eager graph is dropped now
    tracing[0] = True
    fast(x, t, context)  # captured already: a replay calls no Python, so it runs through any trace
    assert captured == [(False, shape), (True, shape)]


def test_a_shape_compiled_while_another_thread_traces_with_no_eager_graph_runs_eagerly(monkeypatch):
    import t2v.compiled as compiled
    from t2v.compiled import CUDAGraphs

    compiler = FakeCompiler()
    fast = FastUNet(Toy(), compiler, cuda_graphs=False, request_compile=lambda shape: None)
    fast.graphs = CUDAGraphs()
    captured, capture = _recording_captures(fast.graphs)
    monkeypatch.setattr(fast.graphs, "_capture", capture)
    shape = _shapes(1)[0]
    x, t, context = example_inputs(shape, torch.zeros(()))
    assert fast.compile_shape(shape)  # compiled before its first call (the bot's warm shapes)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    monkeypatch.setattr(compiled, "fx_tracing_seen", lambda: True)
    assert torch.equal(fast(x, t, context), fast.unet(x, t, context))  # the eager UNet, no capture
    assert captured == []


def test_the_shapes_compiled_without_a_captured_graph_are_listed_on_a_gpu_only(monkeypatch):
    import t2v.compiled as compiled
    from t2v.compiled import GIVE_UP_AFTER, CUDAGraphs

    fast = FastUNet(Toy(), FakeCompiler(), cuda_graphs=False, request_compile=lambda shape: None)
    first, second = _shapes(2)
    assert fast.compile_shape(first) and fast.compile_shape(second)
    assert fast.uncaptured() == []  # no CUDA graphs
    fast.graphs = CUDAGraphs()
    assert fast.uncaptured() == []  # on the CPU: a call captures nothing
    captured, capture = _recording_captures(fast.graphs)
    monkeypatch.setattr(fast.graphs, "_capture", capture)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    assert sorted(fast.uncaptured()) == sorted([first, second])
    fast(*example_inputs(first, torch.zeros(())))
    assert captured == [(True, first)] and fast.uncaptured() == [second]
    tracing = [True]
    monkeypatch.setattr(compiled, "fx_tracing_seen", lambda: tracing[0])
    assert fast.uncaptured() == []  # a call now would serve it eagerly, capturing nothing
    tracing[0] = False
    fast.graphs.failed[(True, second)] = GIVE_UP_AFTER  # its captures failed: its calls run without a graph
    assert fast.uncaptured() == []


@pytest.mark.parametrize(("options", "graphed"), [({}, True), ({"cuda_graphs": False}, False),
                                                  ({"offload_modules": True}, False)])
def test_optimize_graphs_the_text_encoder_on_a_gpu_unless_it_is_offloaded(tiny_pipe, options, graphed):
    import copy

    from t2v.compiled import Graphed
    from t2v.fast import optimize

    pipe = copy.deepcopy(tiny_pipe)
    optimize(pipe, compile=False, **options)
    assert pipe.text_call is None  # on the CPU: nothing to graph
    pipe = copy.deepcopy(tiny_pipe)
    pipe.device = torch.device("cuda")  # what optimize reads of a GPU pipeline; nothing runs here
    optimize(pipe, compile=False, temporal_attention="sdpa", feedforward="plain", **options)
    assert isinstance(pipe.text_call, Graphed) == graphed
    if graphed:
        assert pipe.text_call.fn is pipe.text_encoder


def test_the_compile_cache_asked_for_is_the_one_inductor_uses(monkeypatch, tmp_path):
    import open_clip  # noqa: F401  # importing it (timm) sets inductor's default cache folder in the environment
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    from t2v.fast import configure_inductor

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "default"))  # as after that import
    monkeypatch.chdir(tmp_path)
    configure_inductor(None)
    assert cache_dir() == str(tmp_path / "default")  # no cache asked for: inductor's own
    configure_inductor("compile-cache")  # relative, as T2V_COMPILE_CACHE may be: kept where it was asked from
    monkeypatch.chdir("/")
    assert cache_dir() == str(tmp_path / "compile-cache") and (tmp_path / "compile-cache").is_dir()
