"""The fast path computes what the plain path does (fp32, CPU), and batches equal one-by-one generation."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from t2v import GenerationCancelled, GenerationRequest, InvalidRequest, load_pipeline
from t2v.fast import FusedAttention, TemporalConv2dBlock, channels_last, choose_temporal_attention, fuse
from t2v.kernels import temporal_attention as ta
from t2v.unet import CrossAttention, TemporalConvBlock, TemporalTransformer
from tests.t2v.helpers import relative_error

SMALL = {"frames": 3, "width": 64, "height": 128}


@pytest.fixture
def pipe():
    """A fresh tiny-random pipeline (optimize() rewrites modules in place)."""
    return load_pipeline("tiny-random")


def _unet_inputs(pipe, batch: int = 2):
    cfg = pipe.config.unet
    g = torch.Generator().manual_seed(0)
    return (torch.randn(batch, cfg.in_dim, 3, 8, 16, generator=g), torch.tensor([999, 3][:batch]),
            torch.randn(batch, 77, cfg.context_dim, generator=g))


def test_fused_channels_last_unet_equals_the_plain_unet(pipe):
    inputs = _unet_inputs(pipe)
    with torch.no_grad():
        expected = pipe.unet(*inputs)
        fast = channels_last(fuse(copy.deepcopy(pipe.unet)))
        got = fast(*inputs)
    assert not any(isinstance(m, (CrossAttention, TemporalConvBlock)) for m in fast.modules())
    assert any(isinstance(m, FusedAttention) for m in fast.modules())
    assert any(isinstance(m, TemporalConv2dBlock) for m in fast.modules())
    assert relative_error(got, expected) <= 1e-5


def test_optimized_pipeline_generates_what_the_plain_one_does(pipe):
    request = GenerationRequest("a cat", seed=7, steps=3, **SMALL)
    plain = pipe.generate(request)
    pipe.optimize(compile=False, offload_modules=True, vae_chunk=2)
    fast = pipe.generate(request)
    assert relative_error(fast.latents, plain.latents) <= 1e-5
    assert np.abs(fast.frames.astype(int) - plain.frames.astype(int)).max() <= 1


def test_a_batch_gives_each_request_what_it_would_get_alone(pipe):
    requests = [GenerationRequest("a cat", seed=1, steps=3, **SMALL),
                GenerationRequest("a dog on a skateboard", "blurry", seed=2, steps=3, guidance=4.0, **SMALL),
                GenerationRequest("a cat", seed=3, steps=3, guidance=1.0, **SMALL)]
    batch = pipe.generate_batch(requests)
    for request, result in zip(requests, batch, strict=True):
        alone = pipe.generate(request)
        assert result.seed == request.seed
        assert relative_error(result.latents, alone.latents) <= 1e-5
        assert np.abs(result.frames.astype(int) - alone.frames.astype(int)).max() <= 1
        assert result.timings["batch"] == 3


def test_a_batch_reports_progress_once_per_step_and_cancels_as_a_whole(pipe):
    requests = [GenerationRequest("a cat", seed=s, steps=4, **SMALL) for s in (1, 2)]
    seen = []
    with pytest.raises(GenerationCancelled) as err:
        pipe.generate_batch(requests, on_step=lambda s, t: seen.append(s), should_cancel=lambda: len(seen) >= 2)
    assert seen == [1, 2] and err.value.step == 2


def test_a_batch_of_different_shapes_is_refused_naming_the_difference(pipe):
    requests = [GenerationRequest("a cat", steps=3, **SMALL), GenerationRequest("a cat", steps=4, **SMALL)]
    with pytest.raises(InvalidRequest, match=r"request 1 differs from request 0 in steps"):
        pipe.generate_batch(requests)


def _temporal(unet) -> list[FusedAttention]:
    return [m for block in unet.modules() if isinstance(block, TemporalTransformer) for m in block.modules()
            if isinstance(m, FusedAttention)]


def test_the_triton_temporal_attention_is_opt_in_and_serves_only_the_temporal_transformers(pipe):
    pipe.optimize(compile=False)
    fused = [m for m in pipe.unet.modules() if isinstance(m, FusedAttention)]
    assert fused and all(m.attend is F.scaled_dot_product_attention for m in fused)
    pipe.optimize(compile=False, temporal_attention="triton")  # set again on the UNet fused above
    temporal = _temporal(pipe.unet)
    assert len(temporal) == 2 * sum(isinstance(m, TemporalTransformer) for m in pipe.unet.modules())
    assert all(m.attend is ta.temporal_attention for m in temporal)
    spatial = [m for m in fused if all(m is not t for t in temporal)]
    assert spatial and all(m.attend is F.scaled_dot_product_attention for m in spatial)


def test_the_unet_with_the_triton_temporal_attention_computes_what_it_does_with_sdpa(monkeypatch):
    pipe = load_pipeline("tiny-random", dtype="float16")
    served, kernel = [], ta.temporal_attention

    def spy(q, k, v):
        served.append(ta.why_not(q, k, v) is None)
        return kernel(q, k, v)

    g = torch.Generator().manual_seed(0)
    inputs = (torch.randn(1, 4, 5, 4, 4, generator=g).half(), torch.tensor([999]),
              torch.randn(1, 77, pipe.config.unet.context_dim, generator=g).half())
    with torch.no_grad():
        exact = copy.deepcopy(pipe.unet).float()(*(t.float() if t.is_floating_point() else t for t in inputs))
        sdpa = fuse(copy.deepcopy(pipe.unet))(*inputs)
        monkeypatch.setattr(ta, "temporal_attention", spy)
        pipe.optimize(compile=False, temporal_attention="triton")
        triton = pipe.unet(*inputs)
    assert len(served) == len(_temporal(pipe.unet)) and all(served)
    assert (triton.float() - exact).abs().max() <= 2 * (sdpa.float() - exact).abs().max() + 2e-3


def test_the_triton_temporal_attention_falls_back_to_sdpa_with_a_warning_where_it_cannot_run(pipe, monkeypatch,
                                                                                               caplog):
    monkeypatch.setattr(ta, "INTERPRETED", False)  # a CPU without Triton's interpreter
    pipe.optimize(compile=False, temporal_attention="triton")
    assert all(m.attend is F.scaled_dot_product_attention for m in _temporal(pipe.unet))
    assert "temporal_attention='triton' is not used on cpu" in caplog.text


def test_auto_is_the_kernel_on_a_cuda_gpu_that_runs_it_and_sdpa_elsewhere_without_a_warning(monkeypatch, caplog):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert choose_temporal_attention("auto", cpu) is F.scaled_dot_product_attention  # even under the interpreter
    monkeypatch.setattr(ta, "unavailable", lambda device: None)  # a GPU of compute capability 8.0 or later
    auto = choose_temporal_attention("auto", gpu)
    assert auto.func is ta.temporal_attention and auto.keywords == {"min_pairs": ta.MIN_PAIRS}
    assert choose_temporal_attention("triton", gpu) is ta.temporal_attention  # wherever it applies
    monkeypatch.setattr(ta, "unavailable", lambda device: "compute capability 7.5")
    assert choose_temporal_attention("auto", gpu) is F.scaled_dot_product_attention
    assert "not used" not in caplog.text


@pytest.mark.parametrize(("options", "expected"), [({"temporal_attention": "flash"}, "use one of auto, sdpa, triton"),
                                                   ({"temporal_attention": "triton", "fused": False},
                                                    "needs fused=True")])
def test_temporal_attention_choices_that_cannot_work_are_refused(pipe, options, expected):
    with pytest.raises(ValueError, match=expected):
        pipe.optimize(compile=False, **options)


def test_optimising_on_the_cpu_warns_that_each_shape_compiles_and_the_plain_path_does_not(pipe, caplog):
    pipe.optimize(backend="aot_eager")  # allowed (the bot's T2V_OPTIMIZE=on, tests): a warning, no refusal
    warnings = [r.getMessage() for r in caplog.records if r.name == "t2v.fast" and r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("optimize() on the CPU: each new video shape compiles")
    assert "compile=False" in warnings[0]
    caplog.clear()
    load_pipeline("tiny-random").optimize(compile=False)  # nothing to compile: nothing to warn of
    assert "optimize() on the CPU" not in caplog.text
