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
