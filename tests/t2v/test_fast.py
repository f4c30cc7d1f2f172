"""The fast path computes what the plain path does (fp32, CPU), and batches equal one-by-one generation."""

import copy
import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from t2v import GenerationCancelled, GenerationRequest, InvalidRequest, load_pipeline
from t2v.fast import (
    FP8,
    FP16,
    FusedAttention,
    FusedFeedForward,
    RowsGroupNorm,
    TemporalConv2dBlock,
    channels_last,
    choose_feedforward,
    choose_temporal_attention,
    fuse,
    live_weights,
    optimize,
    rows_groupnorms,
)
from t2v.kernels import fp8, geglu
from t2v.kernels import temporal_attention as ta
from t2v.kernels.fp8 import Fp8Linear
from t2v.unet import CrossAttention, FeedForward, TemporalConvBlock, TemporalTransformer
from tests.t2v.helpers import as_interpreted_e4m3, relative_error

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


def _half_inputs(pipe) -> tuple[torch.Tensor, ...]:
    """A UNet call's inputs in fp16 for the tiny pipeline: 5 frames of 4×4 latents, one timestep, a text context."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(1, 4, 5, 4, 4, generator=g).half(), torch.tensor([999]),
            torch.randn(1, 77, pipe.config.unet.context_dim, generator=g).half())


def test_the_unet_with_the_triton_temporal_attention_computes_what_it_does_with_sdpa(monkeypatch):
    pipe = load_pipeline("tiny-random", dtype="float16")
    served, kernel = [], ta.temporal_attention

    def spy(q, k, v):
        served.append(ta.why_not(q, k, v) is None)
        return kernel(q, k, v)

    inputs = _half_inputs(pipe)
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


@pytest.mark.parametrize("blocks", [64, 7, 1])
@pytest.mark.parametrize("shape", [(2, 64, 5, 6, 8), (3, 64, 6, 40), (4, 32, 4, 4)])
def test_rows_groupnorm_computes_what_groupnorm_does_in_the_layout_it_was_given(shape, blocks):
    g = torch.Generator().manual_seed(0)
    norm = torch.nn.GroupNorm(16, shape[1], eps=1e-6)
    norm.weight.data, norm.bias.data = torch.randn(shape[1], generator=g), torch.randn(shape[1], generator=g)
    rows = RowsGroupNorm(norm, blocks)
    x = 2 * torch.randn(shape[0], *shape[2:], shape[1], generator=g).movedim(-1, 1) + 0.5  # channels innermost
    for given in (x, x.contiguous()):
        with torch.no_grad():
            got, expected = rows(given), norm(given)
        assert got.stride() == expected.stride()
        assert relative_error(got, expected) <= 1e-5
    assert rows.weight is norm.weight and rows.bias is norm.bias


@pytest.mark.parametrize("offset", [0, 100, 1000])
def test_rows_groupnorm_keeps_its_precision_where_a_groups_mean_is_far_from_zero_against_its_spread(offset):
    # E[x²] − E[x]² in fp32 lost 2e-2 at an offset of 100 standard deviations, 15 at 1000 (the fp16 output's own
    # rounding is ≈ 2e-3); each value less its channel's first value loses nothing
    g = torch.Generator().manual_seed(0)
    norm = torch.nn.GroupNorm(8, 64, eps=1e-5)
    x = (torch.randn(2, 3, 960, 64, generator=g) + offset).half().movedim(-1, 1)  # channels-last [2, 64, 3, 960]
    with torch.no_grad():
        exact = copy.deepcopy(norm).double()(x.double())
        got = RowsGroupNorm(norm)(x.float())
    assert float((got.double() - exact).abs().max()) <= 1e-4


def test_the_unet_with_rows_groupnorms_computes_what_it_does_with_torchs_and_goes_back(pipe):
    inputs = _unet_inputs(pipe)
    with torch.no_grad():
        expected = pipe.unet(*inputs)
        pipe.unet = rows_groupnorms(channels_last(fuse(pipe.unet)), "blocks")
        norms = [m for m in pipe.unet.modules() if isinstance(m, torch.nn.GroupNorm)]
        assert norms and all(isinstance(m, RowsGroupNorm) for m in norms)
        assert relative_error(pipe.unet(*inputs), expected) <= 1e-5
        state = pipe.unet.state_dict()
        rows_groupnorms(pipe.unet, "library")
    assert not any(isinstance(m, RowsGroupNorm) for m in pipe.unet.modules())
    assert pipe.unet.state_dict().keys() == state.keys()


def test_the_fast_path_computes_its_groupnorms_in_blocks_of_rows_unless_asked_for_torchs(pipe):
    norms = [m for m in pipe.unet.modules() if isinstance(m, torch.nn.GroupNorm)]
    pipe.optimize(compile=False)
    fast = [m for m in pipe.unet.modules() if isinstance(m, torch.nn.GroupNorm)]  # without CUDA graphs, no FastUNet
    assert len(fast) == len(norms) and all(isinstance(m, RowsGroupNorm) and m.blocks == 64 for m in fast)
    pipe.optimize(compile=False, groupnorm="library")
    assert not any(isinstance(m, RowsGroupNorm) for m in pipe.unet.modules())


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


@pytest.fixture
def gated(monkeypatch) -> list[torch.Tensor]:
    """The outputs of every call of t2v.kernels.geglu's kernel the fast path makes (as a custom op)."""
    calls, kernel = [], geglu.geglu_op

    def spy(*args):
        calls.append(kernel(*args))
        return calls[-1]

    monkeypatch.setattr(geglu, "geglu_op", spy)
    return calls


def _feedforward(dim: int = 64, seed: int = 0) -> tuple[FeedForward, torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ff = FeedForward(dim).eval()
    return ff, torch.randn(2, 24, dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.skipif(not geglu.INTERPRETED, reason="needs TRITON_INTERPRET=1 when Triton is first imported")
def test_the_fused_feedforward_runs_the_kernel_on_fp16_and_computes_what_feedforward_does(gated):
    ff, x = _feedforward()
    fused = FusedFeedForward(copy.deepcopy(ff)).half()
    with torch.no_grad():
        exact = ff(x)
        got = fused(x.half())
        plain = copy.deepcopy(ff).half()(x.half())
        assert len(gated) == 1 and gated[0].shape == (2, 24, 4 * 64)
        assert torch.equal(FusedFeedForward(copy.deepcopy(ff))(x), exact)  # fp32: FeedForward's own way
        bf16 = copy.deepcopy(ff).bfloat16()
        assert torch.equal(FusedFeedForward(copy.deepcopy(bf16)).bfloat16()(x.bfloat16()), bf16(x.bfloat16()))
        fp8_only = FusedFeedForward(copy.deepcopy(ff), frozenset({FP8})).half()  # what "auto" asks for
        assert torch.equal(fp8_only(x.half()), plain)  # fp16 activations: FeedForward's own way
    assert len(gated) == 1 and got.dtype == torch.float16
    assert relative_error(got.float(), exact) <= 2 * relative_error(plain.float(), exact) + 1e-3
    assert fused.state_dict().keys() == ff.state_dict().keys()  # its layers under FeedForward's keys


@pytest.mark.skipif(not geglu.INTERPRETED, reason="needs TRITON_INTERPRET=1 when Triton is first imported")
def test_the_fused_fp8_feedforward_writes_the_second_layers_e4m3_input_once_calibrated(gated, monkeypatch):
    """With static fp8 layers the kernel takes the first layer's e4m3 input and writes the second's, by its
    calibrated input scale; until calibrated, and while a calibration render observes, FeedForward's own way."""
    monkeypatch.setattr(Fp8Linear, "forward", lambda self, x, rows=slice(None): self.reference(x, rows).to(x.dtype))
    monkeypatch.setattr(Fp8Linear, "product", Fp8Linear.product_reference)  # the CPU has no fp8 GEMM
    ff, x = _feedforward()
    exact = ff(x).detach()
    proj = Fp8Linear.from_linear(ff.net[0].proj, "static")
    ff.net[0].proj, ff.net[2] = proj, Fp8Linear.from_linear(ff.net[2], "static")
    fused = FusedFeedForward(ff, frozenset({FP8}))  # what "auto" asks for
    with torch.no_grad():
        fused(x)
        assert gated == []  # per-call scales: not calibrated yet
        with fp8.observing(fused):
            fused(x)
        assert gated == []  # observed as FeedForward runs
        plain = ff(x)
        assert torch.equal(FusedFeedForward(ff, frozenset({FP16}))(x), plain) and gated == []  # fp8 not asked for
        got = fused(x)
    [hidden] = gated
    assert hidden.dtype == fp8.E4M3 and hidden.shape == (2, 24, 4 * 64)
    values, x_scale = proj.quantize_input(x)
    want = geglu.reference(values, proj.weight, x_scale, proj.scale, proj.bias, ff.net[2].input_scale)
    assert as_interpreted_e4m3(hidden.float(), want)
    torch.testing.assert_close(got, ff.net[2].product_reference(hidden.reshape(48, -1), ff.net[2].input_scale,
                                                                x.dtype).reshape(2, 24, 64))
    assert relative_error(got, exact) <= 2 * relative_error(plain, exact)


def test_fuse_wraps_each_feedforward_and_runs_the_kernel_where_asked_and_the_width_allows(pipe):
    unet = fuse(copy.deepcopy(pipe.unet))
    wrapped = [m for m in unet.modules() if isinstance(m, FusedFeedForward)]
    assert len(wrapped) == sum(isinstance(m, FeedForward) for m in pipe.unet.modules()) and wrapped
    assert not any(m.kernel for m in wrapped)
    assert live_weights(unet).keys() == pipe.unet.state_dict().keys()  # t2v.lora fuses styles by these
    fuse(unet, feedforward=frozenset({FP16, FP8}))  # set again on a UNet fused before
    assert all(m.kernel == {FP16, FP8} for m in wrapped)
    widths = {m.net[0].proj.in_features: m.fits for m in wrapped}
    assert widths == {32: False, 64: True}  # the tiny UNet's 32 channels: not a multiple of the kernel's K step


def test_feedforward_auto_is_the_kernel_for_fp8_on_a_cuda_gpu_that_runs_it_and_plain_elsewhere(monkeypatch, caplog):
    """"auto" (optimize's default) runs the fp8 feed-forwards through the kernel, which gained in the video, and
    leaves fp16's on cuBLAS and the gate pass (perf-notes row 74); "triton" asks for both."""
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert choose_feedforward("auto", cpu) == frozenset()  # even under the interpreter
    assert choose_feedforward("plain", gpu) == frozenset()
    monkeypatch.setattr(geglu, "unavailable", lambda device: None)  # a GPU of compute capability 8.0 or later
    assert choose_feedforward("auto", gpu) == {FP8} and choose_feedforward("triton", gpu) == {FP16, FP8}
    assert inspect.signature(optimize).parameters["feedforward"].default == "auto"
    monkeypatch.setattr(geglu, "unavailable", lambda device: "compute capability 7.5")
    assert choose_feedforward("auto", gpu) == frozenset()
    assert "not used" not in caplog.text
    assert choose_feedforward("triton", gpu) == frozenset()
    assert "feedforward='triton' is not used on cuda (compute capability 7.5)" in caplog.text


@pytest.mark.parametrize(("options", "expected"), [({"feedforward": "cublas"}, "use one of auto, plain, triton"),
                                                   ({"groupnorm": "welford"}, "use one of blocks, library"),
                                                   ({"feedforward": "triton", "fused": False}, "needs fused=True")])
def test_feedforward_choices_that_cannot_work_are_refused(pipe, options, expected):
    with pytest.raises(ValueError, match=expected):
        pipe.optimize(compile=False, **options)


@pytest.mark.skipif(not geglu.INTERPRETED, reason="needs TRITON_INTERPRET=1 when Triton is first imported")
def test_the_unet_with_the_feedforward_kernel_computes_what_it_does_without(gated):
    pipe = load_pipeline("tiny-random", dtype="float16")
    inputs = _half_inputs(pipe)
    with torch.no_grad():
        exact = copy.deepcopy(pipe.unet).float()(*(t.float() if t.is_floating_point() else t for t in inputs))
        plain = fuse(copy.deepcopy(pipe.unet))(*inputs)
        pipe.optimize(compile=False, feedforward="triton")
        kernel = pipe.unet(*inputs)
    assert len(gated) == sum(isinstance(m, FusedFeedForward) and m.fits for m in pipe.unet.modules()) > 0
    assert (kernel.float() - exact).abs().max() <= 2 * (plain.float() - exact).abs().max() + 2e-3
