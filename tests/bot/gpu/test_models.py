"""ModelSource: what every worker loads, and the fast path (t2v.fast) it switches on for CUDA devices only.

t2v.fast.optimize and the compile thread are stood in for: CI has no GPU, and these tests check which options reach
them and which shapes are queued, not what torch.compile makes of them (tests/bot/test_compiles.py does).
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.gpu import source as engines
from bot.gpu.compiles import label
from bot.gpu.models import Models, describe
from bot.gpu.source import SHAPE_BYTES, CacheBudget, ModelSource, prune_cache
from bot.settings import load_settings
from t2v import TINY_RANDOM, compiled, fast
from t2v.config import ModelConfig
from tests.bot.helpers import sparse_file

BASE = {"DISCORD_TOKEN": "a.secret-token.x", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}


class FastStandIn:
    """What t2v.fast.optimize leaves as `pipeline.unet`: the config and the bound the warm list needs."""

    max_shapes = 8

    def __init__(self) -> None:
        self.cfg = SimpleNamespace(in_dim=4, context_dim=1024)
        self.request_compile = None


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """What the workers did: the model loads, t2v.fast.optimize calls and the shapes queued to compile, in order."""
    calls: list[tuple[Any, ...]] = []
    queued = SimpleNamespace(warm=lambda unet, device, shapes: calls.extend(("queued", device, label(shape))
                                                                           for shape in shapes),
                             requester=lambda unet, device: lambda shape: None)

    def load(model: str, device: str, dtype: str | None) -> Any:
        calls.append(("load", model, device))
        config = SimpleNamespace(frames=24, width=576, height=320)  # zeroscope_v2_576w's: 1:1 is 448×448
        return SimpleNamespace(config=config, unet=None, device=device)

    def optimize(pipeline: Any, *, cache_dir: str | None = None, backend: str = "inductor",
                 gpu_lock: Any = None) -> None:
        calls.append(("optimize", pipeline.device, cache_dir))
        pipeline.unet, pipeline.gpu_lock = FastStandIn(), gpu_lock

    monkeypatch.setattr(engines, "load_pipeline", load)
    monkeypatch.setattr(engines, "COMPILES", queued)
    monkeypatch.setattr(fast, "optimize", optimize)
    monkeypatch.setattr(compiled, "compile_in_background", lambda: calls.append(("compile_in_background",)))
    return calls


def test_cuda_workers_take_jobs_at_once_and_queue_the_default_shape_then_the_aspects(calls, tmp_path):
    settings = load_settings({**BASE, "T2V_COMPILE_CACHE": str(tmp_path), "BATCH_MAX": "3"}, env_file=None)
    source = ModelSource.of(settings)
    source("cpu")
    assert calls == [("load", TINY_RANDOM, "cpu")]  # auto: never on the CPU
    calls.clear()
    models = source("cuda:1")
    assert calls == [("load", TINY_RANDOM, "cuda:1"), ("optimize", "cuda:1", str(tmp_path)),
                     ("compile_in_background",),  # the process made ready to render beside a compile's traces
                     ("queued", "cuda:1", "1×24×448×448"), ("queued", "cuda:1", "3×24×448×448"),
                     ("queued", "cuda:1", "1×24×576×320"), ("queued", "cuda:1", "1×24×320×576"),
                     ("queued", "cuda:1", "1×24×512×384"), ("queued", "cuda:1", "1×24×384×512")]
    assert models.pipeline.unet.request_compile is not None  # a job's new shape is asked for in the background
    assert models.upscaler is None
    lock = models.pipeline.gpu_lock  # the worker's captures and the compile thread's first runs take turns
    assert lock.acquire(blocking=False) and lock.acquire(blocking=False)  # re-entrant (a plain lock fails, not hangs)
    lock.release()
    lock.release()
    assert source("cuda:0").pipeline.gpu_lock is not lock  # one a GPU: captures on different GPUs do not collide


def test_the_queued_shapes_use_default_frames_and_batch_1_alone_without_batching(calls):
    source = ModelSource.of(load_settings({**BASE, "DEFAULT_FRAMES": "8", "BATCH_MAX": "1"}, env_file=None))
    source("cuda:0")
    assert [call[2] for call in calls if call[0] == "queued"][:2] == ["1×8×448×448", "1×8×576×320"]
    calls.clear()
    ModelSource.of(load_settings({**BASE, "MAX_FRAMES": "16"}, env_file=None))("cuda:0")
    assert [call[2] for call in calls if call[0] == "queued"][:2] == ["1×16×448×448", "2×16×448×448"]  # capped


def test_gpu_workers_warm_up_with_one_step_of_the_default_video_and_cpu_workers_do_not(calls):
    source = ModelSource.of(load_settings({**BASE, "DEFAULT_FRAMES": "8", "T2V_OPTIMIZE": "off"}, env_file=None))
    warm = source("cuda:0").warm_up  # the fast path off: the libraries' first use is still worth taking off a job
    assert (warm.steps, warm.frames, warm.width, warm.height, warm.seed) == (1, 8, 448, 448, 0)
    assert warm.guidance > 1  # guided, as a /video is: the UNet's batch of two
    assert ModelSource.of(load_settings(BASE, env_file=None))("cuda:0").warm_up.frames == 24  # the model's length
    assert source("cpu").warm_up is None
    unguided = ModelSource.of(load_settings({**BASE, "DEFAULT_GUIDANCE": "1"}, env_file=None))("cuda:0").warm_up
    assert unguided.guidance == 1.0  # as /video then runs: the conditional rows alone, another UNet shape


@pytest.mark.parametrize(("setting", "cpu", "cuda"), [("auto", False, True), ("on", True, True),
                                                      ("off", False, False)])
def test_t2v_optimize_picks_the_devices_that_use_the_fast_path(calls, setting, cpu, cuda):
    source = ModelSource.of(load_settings({**BASE, "T2V_OPTIMIZE": setting.upper()}, env_file=None))
    assert (source.fast_on("cpu"), source.fast_on("cuda:0")) == (cpu, cuda)
    source("cpu")
    source("cuda:0")
    assert [call[1] for call in calls if call[0] == "optimize"] == ["cpu"] * cpu + ["cuda:0"] * cuda


def test_a_failing_fast_path_fails_the_load_and_names_the_way_out(calls, monkeypatch):
    def broken(pipeline: Any, *, cache_dir: str | None = None, backend: str = "inductor", gpu_lock: Any = None) -> None:
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
    defaults = ModelSource.of(load_settings(BASE, env_file=None))
    assert defaults == ModelSource(TINY_RANDOM, compile_cache=str(Path("compile-cache").absolute()))  # they agree


def test_every_worker_makes_live_previews_at_most_once_per_status_edit_interval_s(calls):
    settings = load_settings({**BASE, "STATUS_EDIT_INTERVAL_S": "10"}, env_file=None)
    assert ModelSource.of(settings)("cpu").preview_interval_s == 10.0  # edits that show them are as throttled
    assert ModelSource.of(load_settings(BASE, env_file=None))("cpu").preview_interval_s == 2.0  # the default


def test_model_info_reads_sizes_and_frames_from_the_configs():
    zeroscope = replace(ModelConfig(), width=576, height=320, frames=24)
    xl = replace(ModelConfig(), width=1024, height=576, frames=24)
    info = describe(Models(SimpleNamespace(config=zeroscope), SimpleNamespace(config=xl)))
    assert (info.size("16:9"), info.size("9:16"), info.upscale_size("16:9")) == ((576, 320), (320, 576), (1024, 576))
    assert (info.default_frames(32), info.default_frames(16), info.has_upscaler) == (24, 16, True)
    plain = describe(Models(SimpleNamespace(config=zeroscope)))
    assert not plain.has_upscaler and describe(Models(object())).size("16:9") == (448, 256)  # no config: ASPECTS


def test_a_worker_loads_the_upscaler_only_when_one_is_configured():
    settings = load_settings({**BASE, "T2V_DEVICE": "cpu"}, env_file=None)
    assert ModelSource.of(settings)("cpu").upscaler is None
    upscaling = ModelSource.of(settings.model_copy(update={"upscale_model": TINY_RANDOM}))("cpu")
    assert upscaling.upscaler.config.name == TINY_RANDOM and upscaling.pipeline.config.name == TINY_RANDOM


def test_the_compile_cache_is_pruned_least_recently_used_first(tmp_path):
    for age, name in enumerate(["fxgraph/old", "x7/older.py", "25/new.py", "aotautograd/newest"]):
        sparse_file(tmp_path / name, 1, 1_000_000 + 1000 * age)
    sparse_file(tmp_path / "x7/older.py", 1, 900_000)  # the oldest of inductor's (a generated module)
    for name in ("videobot.db", "media/1.mp4", "Ab/notes"):  # not inductor's: never counted, never removed
        sparse_file(tmp_path / name, 1, 1)
    assert prune_cache(str(tmp_path), 0) == (4 * 2**30, 0)  # no limit: nothing goes
    assert prune_cache(str(tmp_path / "missing"), 2**30) == (0, 0)
    assert prune_cache(str(tmp_path), 2.5 * 2**30) == (4 * 2**30, 2 * 2**30)
    left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert left == ["25/new.py", "Ab/notes", "aotautograd/newest", "media/1.mp4", "videobot.db"]


def test_a_bot_that_runs_for_months_keeps_its_cache_within_the_limit_after_its_compiles(tmp_path, caplog):
    caplog.set_level("INFO", "bot.gpu.source")
    sparse_file(tmp_path / "fxgraph/old", 1, 1_000_000)
    budget = CacheBudget(str(tmp_path), 2**30 + 1.5 * SHAPE_BYTES)  # room for one more compile, not two
    assert budget.prune() == (2**30, 0)
    sparse_file(tmp_path / "fxgraph/first", SHAPE_BYTES / 2**30)  # what the first compile wrote
    budget.after_compile()  # may still fit: the cache is not walked
    assert (tmp_path / "fxgraph/old").exists() and "compile cache" not in caplog.text
    sparse_file(tmp_path / "fxgraph/second", SHAPE_BYTES / 2**30)
    budget.after_compile()  # may not: pruned, least recently used first
    assert sorted(path.name for path in (tmp_path / "fxgraph").iterdir()) == ["first", "second"]
    assert f"compile cache {tmp_path}: 314.6 MB on disk; 1.1 GB of its least recently used files removed" in caplog.text
    assert (budget.held, budget.compiles) == (2 * SHAPE_BYTES, 0)
    CacheBudget(str(tmp_path), 0).after_compile()  # no limit: nothing is ever removed
    assert len(list((tmp_path / "fxgraph").iterdir())) == 2


def test_each_worker_start_prunes_the_compile_cache_to_its_setting(calls, tmp_path, caplog):
    caplog.set_level("INFO", "bot.gpu.source")
    sparse_file(tmp_path / "fxgraph/old", 1, 1_000_000)
    sparse_file(tmp_path / "fxgraph/new", 1, 2_000_000)
    settings = load_settings({**BASE, "T2V_COMPILE_CACHE": str(tmp_path), "T2V_COMPILE_CACHE_MAX_GB": "1.5"},
                             env_file=None)
    ModelSource.of(settings)("cuda:0")
    assert [path.name for path in (tmp_path / "fxgraph").iterdir()] == ["new"]
    budget = engines.COMPILES.after_compile.__self__  # and after the compile thread's compiles, as the cache grows
    assert (budget.folder, budget.max_bytes, budget.held) == (str(tmp_path), 1.5e9, 2**30)  # decimal GB, as logged
    assert (f"(cache {tmp_path}, 1.1 GB on disk; 1.1 GB of its least recently used files removed to stay within "
            "T2V_COMPILE_CACHE_MAX_GB=1.5)") in caplog.text
    assert load_settings(BASE, env_file=None).t2v_compile_cache_max_gb == 20  # the default bound


def test_the_upscaler_stays_float16_under_t2v_dtype_fp8(calls, monkeypatch):
    loads = []
    load = engines.load_pipeline
    monkeypatch.setattr(engines, "load_pipeline", lambda model, device, dtype: loads.append((model, dtype)) or load(
        model, device, dtype))
    ModelSource(TINY_RANDOM, "fp8", upscale_model="upscaler", optimize="off")("cpu")
    assert loads == [(TINY_RANDOM, "fp8"), ("upscaler", None)]  # None: float16 on a GPU


def test_t2v_dtype_fp8_loads_each_worker_quantised_and_calibrated(monkeypatch):
    """T2V_DTYPE=fp8 reaches t2v's loader: the UNet's Linear layers in e4m3, their static scales calibrated. (On the
    CPU here, as a GPU would: the fp8 check passed and each product as its fp32 reference arithmetic.)"""
    from t2v.kernels import fp8

    monkeypatch.setattr(fp8, "unavailable", lambda device: None)
    monkeypatch.setattr(fp8.Fp8Linear, "forward",
                        lambda self, x, rows=slice(None): self.reference(x, rows).to(x.dtype))
    settings = load_settings({**BASE, "T2V_DTYPE": "fp8"}, env_file=None)
    models = ModelSource.of(settings)("cpu")
    layers = [m for m in models.pipeline.unet.modules() if isinstance(m, fp8.Fp8Linear)]
    assert layers and all(layer.calibrated for layer in layers)
