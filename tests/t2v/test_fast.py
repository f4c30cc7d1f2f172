"""The fast path computes what the plain path does (fp32, CPU), and batches equal one-by-one generation."""

import copy

import numpy as np
import pytest
import torch

from t2v import GenerationCancelled, GenerationRequest, InvalidRequest, load_pipeline
from t2v.fast import FusedAttention, TemporalConv2dBlock, channels_last, fuse
from t2v.unet import CrossAttention, TemporalConvBlock

SMALL = {"frames": 3, "width": 64, "height": 128}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


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
    assert _rel(got, expected) <= 1e-5


def test_optimized_pipeline_generates_what_the_plain_one_does(pipe):
    request = GenerationRequest("a cat", seed=7, steps=3, **SMALL)
    plain = pipe.generate(request)
    pipe.optimize(compile=False, offload_modules=True, vae_chunk=2)
    fast = pipe.generate(request)
    assert _rel(fast.latents, plain.latents) <= 1e-5
    assert np.abs(fast.frames.astype(int) - plain.frames.astype(int)).max() <= 1


def test_a_batch_gives_each_request_what_it_would_get_alone(pipe):
    requests = [GenerationRequest("a cat", seed=1, steps=3, **SMALL),
                GenerationRequest("a dog on a skateboard", "blurry", seed=2, steps=3, guidance=4.0, **SMALL),
                GenerationRequest("a cat", seed=3, steps=3, guidance=1.0, **SMALL)]
    batch = pipe.generate_batch(requests)
    for request, result in zip(requests, batch, strict=True):
        alone = pipe.generate(request)
        assert result.seed == request.seed
        assert _rel(result.latents, alone.latents) <= 1e-5
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
