"""ModelSource: what every worker loads, and the fast path (t2v.fast) it switches on for CUDA devices only.

t2v.fast.optimize and the UNet's warm-up are stood in for: CI has no GPU, and these tests check which options reach
them, not what torch.compile makes of them.
"""

from __future__ import annotations

import pickle
from types import SimpleNamespace
from typing import Any

import pytest

from bot import engines
from bot.engines import ModelSource
from bot.settings import load_settings
from t2v import TINY_RANDOM, fast

BASE = {"DISCORD_TOKEN": "secret-token", "T2V_ALLOW_TINY": "1"}


class WarmUNet:
    """Records the shapes it is warmed up for, as FastUNet.warmup(batch, frames, height, width)."""

    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def warmup(self, batch: int, frames: int, height: int, width: int) -> float:
        self.calls.append(("warmup", batch, frames, height, width))
        return 0.0


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """What the workers did: the model loads, t2v.fast.optimize calls and warm-ups, in order."""
    calls: list[tuple[Any, ...]] = []

    def load(model: str, device: str, dtype: str | None) -> Any:
        calls.append(("load", model, device))
        config = SimpleNamespace(frames=24, width=576, height=320)  # zeroscope_v2_576w's: 1:1 is 448×448
        return SimpleNamespace(config=config, unet=None, device=device)

    def optimize(pipeline: Any, *, cache_dir: str | None = None) -> None:
        calls.append(("optimize", pipeline.device, cache_dir))
        pipeline.unet = WarmUNet(calls)

    monkeypatch.setattr(engines, "load_pipeline", load)
    monkeypatch.setattr(fast, "optimize", optimize)
    return calls


def test_cuda_workers_optimise_and_warm_up_the_default_shape_at_batch_1_and_batch_max(calls, tmp_path):
    settings = load_settings({**BASE, "T2V_COMPILE_CACHE": str(tmp_path), "BATCH_MAX": "3"}, env_file=None)
    source = ModelSource.of(settings)
    source("cpu")
    assert calls == [("load", TINY_RANDOM, "cpu")]  # auto: never on the CPU
    calls.clear()
    source("cuda:1")
    assert calls == [("load", TINY_RANDOM, "cuda:1"), ("optimize", "cuda:1", str(tmp_path)),
                     ("warmup", 1, 24, 448, 448), ("warmup", 3, 24, 448, 448)]


def test_the_warm_up_uses_default_frames_and_batch_1_alone_without_batching(calls):
    source = ModelSource.of(load_settings({**BASE, "DEFAULT_FRAMES": "8", "BATCH_MAX": "1"}, env_file=None))
    source("cuda:0")
    assert calls[1:] == [("optimize", "cuda:0", None), ("warmup", 1, 8, 448, 448)]
    calls.clear()
    ModelSource.of(load_settings({**BASE, "MAX_FRAMES": "16"}, env_file=None))("cuda:0")
    assert calls[2:] == [("warmup", 1, 16, 448, 448), ("warmup", 4, 16, 448, 448)]  # the clip capped at MAX_FRAMES


@pytest.mark.parametrize(("setting", "cpu", "cuda"), [("auto", False, True), ("on", True, True),
                                                      ("off", False, False)])
def test_t2v_optimize_picks_the_devices_that_use_the_fast_path(calls, setting, cpu, cuda):
    source = ModelSource.of(load_settings({**BASE, "T2V_OPTIMIZE": setting.upper()}, env_file=None))
    assert (source.fast_on("cpu"), source.fast_on("cuda:0")) == (cpu, cuda)
    source("cpu")
    source("cuda:0")
    assert [call[1] for call in calls if call[0] == "optimize"] == ["cpu"] * cpu + ["cuda:0"] * cuda


def test_a_failing_fast_path_fails_the_load_and_names_the_way_out(calls, monkeypatch):
    def broken(pipeline: Any, *, cache_dir: str | None = None) -> None:
        raise RuntimeError("inductor needs triton")

    monkeypatch.setattr(fast, "optimize", broken)
    with pytest.raises(RuntimeError, match=r"fast path \(T2V_OPTIMIZE=auto\) failed on cuda:0: inductor needs "
                                           r"triton; T2V_OPTIMIZE=off serves without it"):
        ModelSource(TINY_RANDOM)("cuda:0")


def test_the_model_source_is_plain_picklable_values_without_the_token(tmp_path):
    settings = load_settings({**BASE, "T2V_OPTIMIZE": "on", "T2V_COMPILE_CACHE": str(tmp_path), "BATCH_MAX": "2"},
                             env_file=None)
    source = ModelSource.of(settings)
    assert pickle.loads(pickle.dumps(source)) == source
    assert (source.optimize, source.compile_cache, source.batch_max) == ("on", str(tmp_path), 2)
    assert "secret-token" not in repr(source) and "secret-token" not in str(pickle.dumps(source))
    assert ModelSource.of(load_settings(BASE, env_file=None)) == ModelSource(TINY_RANDOM)  # the defaults agree
