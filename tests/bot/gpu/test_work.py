"""The GPU-thread work: out of GPU memory it retries with smaller VAE chunks (emptying CUDA's cache), an upscale's
previews follow the steps its sampler really runs, and every work's previews come at most once per the worker's
STATUS_EDIT_INTERVAL_S."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from bot.gpu import work as render
from bot.gpu.models import Models
from t2v import GenerationRequest, GenerationResult
from t2v.preview import preview_due

PROMPT = "a kite flying over a windy beach"
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.11 GiB total capacity)"


def test_on_cuda_the_cache_is_emptied_after_each_out_of_memory(monkeypatch: pytest.MonkeyPatch):
    emptied: list[int] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(len(calls)))
    calls: list[int] = []

    def generate(request: GenerationRequest, on_step: Any, should_cancel: Any, on_preview: Any = None) -> Any:
        calls.append(pipeline.vae_chunk)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError(OOM)
        return GenerationResult(np.zeros((1, 64, 64, 3), np.uint8), 1, {})

    pipeline = SimpleNamespace(device=torch.device("cuda", 0), vae_chunk=3, generate=generate)
    render.generate(pipeline, GenerationRequest(PROMPT, frames=1), lambda step, total: None, lambda: False,
                    preview_interval_s=2.0)
    cpu = SimpleNamespace(device=torch.device("cpu"))
    render.free_gpu_memory(cpu)

    assert calls == [3, 1] and emptied == [1]  # emptied once, after the failed attempt; never for the CPU




class Upscaler:
    """Stands in for t2v's video-to-video: it runs int(steps × strength) steps, and copies the preview frames off the
    GPU (counted) on the steps its `on_preview` says are due, as t2v does."""

    def __init__(self) -> None:
        self.copies: list[int] = []

    def generate_video2video(self, request: Any, video: np.ndarray, strength: float, on_step: Any = None,
                             should_cancel: Any = None, on_preview: Any = None) -> GenerationResult:
        total = int(request.steps * strength)
        for step in range(1, total + 1):
            on_step(step, total)
            if on_preview is not None and preview_due(on_preview, step, total):
                self.copies.append(step)
                on_preview(step, total, np.full((2, 8, 64, 3), step, np.uint8))
        return GenerationResult(np.zeros((len(video), 64, 64, 3), np.uint8), request.seed or 0, {"total_s": 1.0})


@pytest.mark.parametrize("steps", [50, 25, 12])
def test_every_preview_frame_an_upscale_copies_off_the_gpu_becomes_a_gif(steps):
    upscaler, gifs = Upscaler(), []
    work = render.upscale_work(GenerationRequest(PROMPT, steps=steps, width=64, height=64),
                               np.zeros((2, 64, 64, 3), np.uint8), strength=0.7)

    def progress(step: int, total: int, *preview: Any) -> None:
        if preview:
            gifs.append(preview[0].step)

    work(Models(object(), upscaler, preview_interval_s=0.0), progress, lambda: False)  # each step the cadence allows
    total = int(steps * 0.7)
    assert upscaler.copies == gifs  # no frames are copied for a GIF that is then dropped
    assert gifs == list(range(total // 8, total, total // 8))[:len(gifs)] and 0 < len(gifs) <= 8


class Recording:
    """Stands in for a pipeline and an upscaler: records the `on_preview` every generate call is given."""

    def __init__(self) -> None:
        self.given: list[Any] = []

    def generate(self, request: Any, on_step: Any = None, should_cancel: Any = None, on_preview: Any = None) -> Any:
        self.given.append(on_preview)
        return GenerationResult(np.zeros((1, 64, 64, 3), np.uint8), 1, {})

    def generate_batch(self, requests: list[Any], on_step: Any = None, should_cancel: Any = None,
                       on_preview: Any = None) -> list[Any]:
        self.given.append(on_preview)
        return [GenerationResult(np.zeros((1, 64, 64, 3), np.uint8), 1, {"batch": len(requests)})] * len(requests)

    def generate_video2video(self, request: Any, video: np.ndarray, strength: float, on_step: Any = None,
                             should_cancel: Any = None, on_preview: Any = None) -> Any:
        return self.generate(request, on_step, should_cancel, on_preview)


def test_every_work_makes_previews_at_most_once_per_its_workers_status_edit_interval():
    pipeline, request = Recording(), GenerationRequest(PROMPT, steps=8, width=64, height=64)
    models = Models(pipeline, pipeline, warm_up=request, preview_interval_s=10.0)  # STATUS_EDIT_INTERVAL_S=10
    for work in (render.render_work(request), render.batch_work([request, request]), render.warm_up_work(),
                 render.upscale_work(request, np.zeros((2, 64, 64, 3), np.uint8), strength=0.7)):
        work(models, lambda *_: None, lambda: False)
    assert [on_preview.min_interval_s for on_preview in pipeline.given] == [10.0] * 4


class CompiledShapes:
    """Stands in for the fast path's UNet (t2v.compiled.FastUNet): the compiled shapes without a CUDA graph; a
    shape's UNet call (`generate_batch` of its videos) captures it."""

    def __init__(self, shapes: list[Any]) -> None:
        self.shapes = list(shapes)

    def uncaptured(self) -> list[Any]:
        return list(self.shapes)


class ShapeRenders:
    """Stands in for t2v.VideoPipeline's `generate_batch`: records each call's requests; `cancel_at` raises
    GenerationCancelled at that call, `fail_at` an error; any other call captures its shape."""

    def __init__(self, unet: CompiledShapes, cancel_at: int | None = None, fail_at: int | None = None) -> None:
        self.unet, self.cancel_at, self.fail_at = unet, cancel_at, fail_at
        self.calls: list[list[GenerationRequest]] = []

    def generate_batch(self, requests: list[GenerationRequest], on_step: Any = None, should_cancel: Any = None,
                       on_preview: Any = None) -> list[GenerationResult]:
        from t2v.errors import GenerationCancelled

        self.calls.append(requests)
        if len(self.calls) == self.cancel_at:
            raise GenerationCancelled(0, 1)
        if len(self.calls) == self.fail_at:
            raise ValueError("a capture failed")
        self.unet.shapes.pop(0)
        frames = np.zeros((requests[0].frames, 8, 8, 3), np.uint8)
        return [GenerationResult(frames, 0, {}) for _ in requests]


GUIDED_16 = ((32, 4, 16, 32, 32), (32,), (32, 77, 1024))  # 16 guided 16×256×256 videos: two rows each
UNGUIDED_3 = ((3, 4, 8, 32, 56), (3,), (3, 77, 1024))  # 3 unguided 8×448×256 videos


def test_idle_time_renders_one_step_of_each_compiled_shape_without_a_cuda_graph_once():
    unet = CompiledShapes([GUIDED_16, UNGUIDED_3])
    pipeline = ShapeRenders(unet)
    models = Models(pipeline)  # type: ignore[arg-type]
    render.capture_while_idle(models, lambda: False)
    [guided, unguided] = pipeline.calls
    assert len(guided) == 16 and {(r.width, r.height, r.frames, r.steps, r.guidance) for r in guided} == {
        (256, 256, 16, 1, 9.0)}
    assert len(unguided) == 3 and {(r.width, r.height, r.frames, r.steps, r.guidance) for r in unguided} == {
        (448, 256, 8, 1, 1.0)}
    unet.shapes = [GUIDED_16]  # its graph was dropped since (least recently used): a job captures it again
    render.capture_while_idle(models, lambda: False)
    assert len(pipeline.calls) == 2


def test_idle_renders_stop_when_a_job_waits_and_a_cancelled_one_is_rendered_at_the_next_idle_moment():
    unet = CompiledShapes([GUIDED_16, UNGUIDED_3])
    pipeline = ShapeRenders(unet, cancel_at=1)
    models = Models(pipeline)  # type: ignore[arg-type]
    render.capture_while_idle(models, lambda: False)
    assert len(pipeline.calls) == 1  # cancelled: a job came; the next shape waits too
    render.capture_while_idle(models, lambda: True)
    assert len(pipeline.calls) == 1  # a job waits: nothing starts
    render.capture_while_idle(models, lambda: False)
    assert [len(call) for call in pipeline.calls] == [16, 16, 3]


def test_an_idle_render_that_fails_is_not_tried_again_and_the_error_reaches_the_executor():
    unet = CompiledShapes([GUIDED_16])
    pipeline = ShapeRenders(unet, fail_at=1)
    models = Models(pipeline)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a capture failed"):
        render.capture_while_idle(models, lambda: False)
    render.capture_while_idle(models, lambda: False)
    assert len(pipeline.calls) == 1  # its first job captures it, as before


def test_a_pipeline_without_the_fast_path_has_nothing_to_capture_while_idle():
    render.capture_while_idle(Models(SimpleNamespace(unet=object())), lambda: False)  # type: ignore[arg-type]
    render.capture_while_idle(Models(SimpleNamespace()), lambda: False)  # type: ignore[arg-type]
