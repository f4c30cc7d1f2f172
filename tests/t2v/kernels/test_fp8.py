"""fp8 (e4m3) Linear layers: quantisation within e4m3's rounding, which layers are swapped, the same network after
fusing, and a refusal in one line wherever there are no fp8 tensor cores (the product itself needs a GPU)."""

import copy
import logging

import pytest
import torch
from torch import nn

from t2v import UnsupportedDevice, VideoPipeline, load_pipeline
from t2v.cli import main
from t2v.config import tiny_config
from t2v.fast import FusedAttention, fuse
from t2v.kernels import fp8
from t2v.kernels.fp8 import Fp8Linear
from t2v.loader import CALIBRATION_PROMPTS, CALIBRATION_STEPS
from t2v.networks import build_modules

HALF_ULP, SUBNORMAL_STEP = 2.0**-4, 2.0**-10  # e4m3: 3 mantissa bits; half the subnormal spacing, in scale units


def _rows_of_every_size(rows: int = 16, cols: int = 64) -> torch.Tensor:
    """Random rows whose magnitudes span 10⁻⁴ … 10⁴, an all-zero row among them."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, cols, generator=g) * torch.logspace(-4, 4, rows)[:, None]
    x[3] = 0
    return x


@pytest.mark.parametrize("scaling", fp8.SCALINGS)
def test_a_round_trip_stays_within_e4m3_rounding(scaling):
    x = _rows_of_every_size()
    values, scale = fp8.quantize(x, scaling)
    assert values.dtype == torch.float8_e4m3fn and scale.dtype == torch.float32
    back = fp8.dequantize(values, scale)
    bound = HALF_ULP * x.abs() + SUBNORMAL_STEP * scale + 1e-6 * x.abs().amax(dim=-1, keepdim=True)
    assert bool(((back - x).abs() <= bound).all())
    assert torch.isfinite(back).all() and not back[3].any()


def test_each_row_keeps_its_largest_value_exactly_with_row_scales():
    x = _rows_of_every_size()
    back = fp8.dequantize(*fp8.quantize(x, "row"))
    torch.testing.assert_close(back.abs().amax(dim=1), x.abs().amax(dim=1), rtol=1e-6, atol=0)


def test_row_scales_keep_small_rows_that_one_scale_per_tensor_flushes_to_zero():
    x = _rows_of_every_size()
    by_row = fp8.dequantize(*fp8.quantize(x, "row"))
    by_tensor = fp8.dequantize(*fp8.quantize(x, "tensor"))
    assert not by_tensor[0].any()  # 10⁻⁴ against a tensor maximum near 10⁴: below e4m3's range
    assert float((by_row[0] - x[0]).norm() / x[0].norm()) < HALF_ULP


@pytest.mark.parametrize("scaling", fp8.SCALINGS)
def test_the_quantised_layer_computes_the_linear_map_within_a_few_percent(scaling):
    g = torch.Generator().manual_seed(1)
    linear = nn.Linear(64, 48)
    x = torch.randn(3, 5, 64, generator=g)
    layer = Fp8Linear.from_linear(linear, scaling)
    exact = linear(x).detach()
    got = layer.reference(x)
    assert got.shape == exact.shape
    assert float((got - exact).norm() / exact.norm()) < 0.05


def test_stacked_layers_and_their_row_parts_compute_what_each_layer_does():
    layers = [Fp8Linear.from_linear(nn.Linear(32, n, bias=n != 32)) for n in (32, 16, 48)]
    stacked = Fp8Linear.cat(layers)
    x = torch.randn(7, 32)
    assert torch.equal(stacked.reference(x), torch.cat([layer.reference(x) for layer in layers], dim=-1))
    assert torch.equal(stacked.reference(x, slice(32, 48)), layers[1].reference(x))


def test_a_dtype_change_of_the_network_keeps_the_e4m3_weights_and_fp32_scales():
    layer = Fp8Linear.from_linear(nn.Linear(32, 16))
    layer.half()
    assert layer.weight.dtype == torch.float8_e4m3fn and layer.scale.dtype == torch.float32
    assert layer.bias.dtype == torch.float16


def _linears_in_transformers(unet: nn.Module) -> int:
    from t2v.unet import SpatialTransformer, TemporalTransformer

    return sum(isinstance(m, nn.Linear) for block in unet.modules()
               if isinstance(block, SpatialTransformer | TemporalTransformer) for m in block.modules())


def test_the_transformers_linear_layers_are_swapped_and_nothing_else():
    unet = build_modules(tiny_config(), device="cpu")["unet"]
    expected = _linears_in_transformers(unet)
    swapped = fp8.quantize_unet(unet, keep=())
    assert len(swapped) == expected > 0
    assert any(n.endswith("attn1.to_q") for n in swapped) and any(n.endswith("ff.net.0.proj") for n in swapped)
    assert not any("time_embed" in n or "emb_layers" in n for n in swapped)
    assert isinstance(unet.time_embed[0], nn.Linear)
    assert all(isinstance(m, nn.Conv1d) for n, m in unet.named_modules() if n.endswith(("1.proj_in", "1.proj_out"))
               and "input_blocks.0" in n)  # the temporal transformers' projections stay
    assert _linears_in_transformers(unet) == 0


def _tiny_unet_and_inputs(seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """A tiny UNet whose random weights are the seed's (not whatever the tests before left in the global generator:
    the static scaling's error against per-call scales ranged 0.85–1.5× with them), and one input of it."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = build_modules(tiny_config(), device="cpu")["unet"].eval()
    g = torch.Generator().manual_seed(seed)
    return unet, (torch.randn(1, 4, 3, 4, 4, generator=g), torch.tensor([500]), torch.randn(1, 77, 64, generator=g))


def test_the_fused_fp8_unet_is_the_unfused_fp8_unet(monkeypatch):
    """On the CPU the products are the fp32 reference arithmetic; fusing stacks q/k/v without requantising."""
    monkeypatch.setattr(Fp8Linear, "forward", Fp8Linear.reference)
    unet, inputs = _tiny_unet_and_inputs()
    with torch.no_grad():
        exact = unet(*inputs)
        fp8.quantize_unet(unet, "row")
        quantised = unet(*inputs)
        fused = fuse(copy.deepcopy(unet))
        assert all(isinstance(p, Fp8Linear) for m in fused.modules() if isinstance(m, FusedAttention)
                   for p in m.projections)
        got = fused(*inputs)
    torch.testing.assert_close(got, quantised, rtol=1e-4, atol=1e-5)
    # one call of this tiny random network moves by 14% in fp8 (bf16: 3.4%); each layer by ~4% (test above)
    assert 0 < float((quantised - exact).norm() / exact.norm()) < 0.3


def _static(n_in: int = 32, n_out: int = 16) -> Fp8Linear:
    return Fp8Linear.from_linear(nn.Linear(n_in, n_out), "static")


def test_an_uncalibrated_static_layer_scales_each_input_as_the_tensor_scaling_does():
    linear = nn.Linear(32, 16)
    static, tensor = Fp8Linear.from_linear(linear, "static"), Fp8Linear.from_linear(linear, "tensor")
    x = torch.randn(5, 32) * 300
    assert not static.calibrated
    assert torch.equal(static.reference(x), tensor.reference(x))


def test_observing_keeps_the_largest_input_magnitude_of_every_call_as_the_fixed_scale():
    layer = _static()
    small, large = torch.full((2, 32), 0.5), torch.full((3, 32), -4.0)
    with fp8.observing(layer) as layers:
        layer.reference(large)
        layer.reference(small)  # the last call is not the largest
    assert layers == [layer] and layer.calibrated and not layer.observing
    assert float(layer.input_amax) == 4.0
    values, scale = layer.quantize_input(small)
    assert float(scale) == pytest.approx(4.0 * fp8.HEADROOM / fp8.E4M3_MAX, rel=1e-7)
    assert scale is layer.input_scale  # stored at calibration, not computed again at each call
    torch.testing.assert_close(fp8.dequantize(values, scale), small)  # 0.5 is exact in e4m3 at this scale


def test_a_calibrated_layer_clamps_inputs_beyond_its_headroom_and_stays_finite():
    layer = _static()
    with fp8.observing(layer):
        layer.reference(torch.ones(1, 32))
    x = torch.ones(1, 32)
    x[0, 0] = 1e6  # 125,000 × the headroom
    values, scale = layer.quantize_input(x)
    back = fp8.dequantize(values, scale)
    assert float(back[0, 0]) == fp8.HEADROOM * 1.0 and float(back[0, 1]) == 1.0
    assert torch.isfinite(layer.reference(x)).all()


def test_a_calibration_survives_a_state_dict_and_a_callers_inference_mode():
    layer = _static()
    with torch.inference_mode(), fp8.observing(layer):
        layer.reference(torch.full((1, 32), 3.0))
    assert layer.calibrated and not layer.input_amax.is_inference() and not layer.input_scale.is_inference()
    fresh = _static()
    fresh.load_state_dict(layer.state_dict())
    assert fresh.calibrated and float(fresh.input_amax) == 3.0
    assert torch.equal(fresh.quantize_input(torch.ones(1, 32))[1], layer.input_scale)


def test_calibrating_again_starts_from_zero():
    layer = _static()
    with fp8.observing(layer):
        layer.reference(torch.full((1, 32), 9.0))
    with fp8.observing(layer):
        layer.reference(torch.full((1, 32), 2.0))
    assert float(layer.input_amax) == 2.0


def test_stacked_static_layers_share_the_largest_calibration_and_stay_uncalibrated_if_one_is():
    a, b, c = _static(), _static(), _static()
    with fp8.observing(a):
        a.reference(torch.full((1, 32), 3.0))
    with fp8.observing(b):
        b.reference(torch.full((1, 32), 7.0))
    both = Fp8Linear.cat([a, b])
    assert both.calibrated and float(both.input_amax) == 7.0 and both.scaling == "static"
    x = torch.randn(4, 32, generator=torch.Generator().manual_seed(2))
    apart = torch.cat([a.reference(x), b.reference(x)], dim=-1)
    # one requantised weight scale and one input scale for both: each within e4m3's rounding of the parts
    assert float((both.reference(x) - apart).norm() / apart.norm()) < 0.05
    assert not Fp8Linear.cat([a, c]).calibrated


def test_a_static_layer_no_calibration_reached_is_named_and_keeps_per_call_scales(caplog):
    model = nn.Sequential(_static(), nn.ReLU(), _static(16, 16))
    with fp8.observing(model):
        model[0].reference(torch.ones(1, 32))  # the second layer never runs
    assert model[0].calibrated and not model[2].calibrated
    assert "1 static layer(s) saw no input while calibrating, and scale per call (2)" in caplog.text


def test_the_calibrated_static_unet_stays_near_the_float_unet(monkeypatch):
    """The static scaling, calibrated on one input and run on another, is as close to the unquantised network as
    per-call tensor scales (its headroom costs e4m3 nothing but range it does not use)."""
    monkeypatch.setattr(Fp8Linear, "forward", Fp8Linear.reference)
    unet, calibration = _tiny_unet_and_inputs(seed=0)
    _, inputs = _tiny_unet_and_inputs(seed=1)
    tensor = copy.deepcopy(unet)
    with torch.no_grad():
        exact = unet(*inputs)
        fp8.quantize_unet(unet, "static")
        fp8.quantize_unet(tensor, "tensor")
        with fp8.observing(unet) as layers:
            unet(*calibration)
        assert layers and all(layer.calibrated for layer in layers)
        static_error = float((unet(*inputs) - exact).norm() / exact.norm())
        tensor_error = float((tensor(*inputs) - exact).norm() / exact.norm())
    assert 0 < static_error < 1.5 * tensor_error


def test_the_product_refuses_the_cpu_in_one_line():
    with pytest.raises(UnsupportedDevice, match=r"^fp8 Linear on cpu: fp8 needs a CUDA GPU with fp8 tensor cores"):
        Fp8Linear.from_linear(nn.Linear(32, 16))(torch.randn(2, 32))


def test_gpus_without_fp8_tensor_cores_are_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert fp8.unavailable("cuda") == ("fp8 needs compute capability 8.9 or later (Ada, Hopper, Blackwell); "
                                       "NVIDIA A100 is 8.0")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert fp8.unavailable("cuda") is None
    assert "is not one" in fp8.unavailable("cpu")


def test_loading_fp8_on_the_cpu_is_refused_before_any_weights_are_read():
    with pytest.raises(UnsupportedDevice, match=r"^dtype fp8: fp8 needs a CUDA GPU"):
        load_pipeline("tiny-random", dtype="fp8")


def test_the_command_line_refuses_fp8_in_one_line(capsys, tmp_path):
    assert main(["generate", "a cat", "--dtype", "fp8", "-o", str(tmp_path / "v.mp4")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --dtype fp8: fp8 needs a CUDA GPU with fp8 tensor cores (compute capability 8.9 or later: Ada, "
        "Hopper, Blackwell); cpu is not one"]
    assert main(["convert", "tiny-random", str(tmp_path / "export"), "--dtype", "fp8"]) == 2
    assert "fp8 is a precision to compute in, not to store" in capsys.readouterr().err


def test_loading_fp8_calibrates_every_static_scale_with_one_render(monkeypatch, caplog):
    """The loader's path on a GPU, run on the CPU: the fp8 check passed and the products as their fp32 reference."""
    monkeypatch.setattr(fp8, "unavailable", lambda device: None)
    monkeypatch.setattr(Fp8Linear, "forward", lambda self, x, rows=slice(None): self.reference(x, rows).to(x.dtype))
    renders, original = [], VideoPipeline.generate_batch
    monkeypatch.setattr(VideoPipeline, "generate_batch",
                        lambda self, requests, *a, **k: renders.append(requests) or original(self, requests, *a, **k))
    caplog.set_level(logging.INFO, logger="t2v.loader")
    pipe = load_pipeline("tiny-random", dtype="fp8")
    layers = [m for m in pipe.unet.modules() if isinstance(m, Fp8Linear)]
    assert layers and all(m.scaling == "static" and m.calibrated and float(m.input_amax) > 0 for m in layers)
    assert [[(r.prompt, r.steps, r.frames) for r in requests] for requests in renders] == [
        [(prompt, CALIBRATION_STEPS, pipe.config.frames) for prompt in CALIBRATION_PROMPTS]]
    assert f"fp8: {len(layers)} static scales calibrated in" in caplog.text
    result = pipe.generate(pipe.request("a cat", steps=2, seed=3))
    assert torch.isfinite(result.latents).all()



def test_the_attention_output_projections_stay_in_their_dtype_by_default():
    unet = build_modules(tiny_config(), device="cpu")["unet"]
    swapped = fp8.quantize_unet(unet)
    kept = [name for name, m in unet.named_modules() if name.endswith("to_out.0")]
    assert kept and all(isinstance(unet.get_submodule(name), nn.Linear) for name in kept)
    assert not any(name.endswith("to_out.0") for name in swapped)
    assert any(name.endswith("attn1.to_q") for name in swapped)


def test_a_calibration_render_that_fails_says_it_was_fp8s_and_how_to_go_without(monkeypatch):
    monkeypatch.setattr(fp8, "unavailable", lambda device: None)

    def out_of_memory(self, requests, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(VideoPipeline, "generate_batch", out_of_memory)
    with pytest.raises(RuntimeError, match=r"^fp8: the calibration render at load \(2 videos of 10 steps at the "
                                           r"model's size\) failed: CUDA out of memory\. Tried to allocate 2\.00 GiB; "
                                           r"load with another dtype to go without it$"):
        load_pipeline("tiny-random", dtype="fp8")


def test_the_3x3_convolutions_are_swapped_only_when_asked_and_only_those_the_kernel_takes():
    unet = build_modules(tiny_config(), device="cpu")["unet"]
    fp8.quantize_unet(unet)
    assert not any(isinstance(m, fp8.Fp8Conv3x3) for m in unet.modules())
    unet = build_modules(tiny_config(), device="cpu")["unet"]
    eligible = {name for name, m in unet.named_modules() if fp8.eligible_conv(m)}
    swapped = set(fp8.quantize_unet(unet, convs=True))
    assert eligible and eligible <= swapped
    assert {name for name, m in unet.named_modules() if isinstance(m, fp8.Fp8Conv3x3)} == eligible
    assert any(n.endswith("in_layers.2") for n in eligible) and any(n.endswith(".conv") for n in eligible)
    kept = [m for m in unet.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert kept and all(m.stride == (2, 2) or m.in_channels % 64 or m.out_channels % 16 for m in kept)  # the first
    #   and last convolutions (4 channels), the downsampling ones, and a 96-channel skip input of this tiny network
    assert not fp8.eligible_conv(nn.Conv2d(64, 64, 3, padding=1, padding_mode="reflect"))  # the kernel pads zeros


def _calibrated_conv(seed: int = 0) -> tuple[fp8.Fp8Conv3x3, nn.Conv2d, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(64, 32, 3, padding=1)
    x = torch.randn(2, 64, 5, 6, generator=g).contiguous(memory_format=torch.channels_last)
    layer = fp8.Fp8Conv3x3.from_conv(conv)
    with fp8.observing(layer):
        layer.reference(x)
    return layer, conv, x


def test_the_fp8_convolution_runs_the_kernel_on_its_calibrated_input():
    """forward (the kernel, in Triton's interpreter here) is reference's arithmetic; both within e4m3 of the conv."""
    layer, conv, x = _calibrated_conv()
    assert layer.calibrated and float(layer.input_amax) == float(x.abs().max())
    torch.testing.assert_close(layer.product_scale, layer.input_scale * layer.scale)
    with torch.no_grad():
        got, exact = layer(x), conv(x)
    torch.testing.assert_close(got, layer.reference(x), rtol=1e-4, atol=1e-4)
    assert got.is_contiguous(memory_format=torch.channels_last) and got.dtype == x.dtype
    assert 0 < float((got - exact).norm() / exact.norm()) < 0.06


def test_a_convolutions_calibration_survives_a_state_dict_and_a_callers_inference_mode():
    layer, conv, x = _calibrated_conv()
    fresh = fp8.Fp8Conv3x3.from_conv(conv)
    assert not fresh.calibrated
    with torch.inference_mode():
        fresh.load_state_dict(layer.state_dict())
    assert fresh.calibrated
    assert not any(t.is_inference() for t in (fresh.input_amax, fresh.input_scale, fresh.product_scale))
    torch.testing.assert_close(fresh.product_scale, layer.product_scale)
    torch.testing.assert_close(fresh.reference(x), layer.reference(x))


def test_an_uncalibrated_convolution_scales_each_input_and_a_dtype_change_keeps_its_e4m3_parts():
    conv = nn.Conv2d(64, 32, 3, padding=1)
    layer = fp8.Fp8Conv3x3.from_conv(conv).half()
    assert (layer.weight.dtype, layer.scale.dtype, layer.product_scale.dtype, layer.bias.dtype) == (
        torch.float8_e4m3fn, torch.float32, torch.float32, torch.float16)
    x = torch.randn(1, 64, 4, 5).half().contiguous(memory_format=torch.channels_last)
    assert not layer.calibrated
    with torch.no_grad():
        got, exact = layer(x), conv.half().float()(x.float())
    torch.testing.assert_close(got.float(), layer.reference(x), rtol=2e-3, atol=2e-3)
    assert float((got.float() - exact).norm() / exact.norm()) < 0.06


def test_the_fp8_convolution_refuses_the_cpu_in_one_line_without_the_interpreter(monkeypatch):
    from t2v.kernels import conv3x3

    monkeypatch.setattr(conv3x3, "INTERPRETED", False)
    layer, _, x = _calibrated_conv()
    with pytest.raises(UnsupportedDevice, match=r"^fp8 convolution on cpu: fp8 needs a CUDA GPU with fp8 tensor "):
        layer(x)


def test_loading_fp8_with_convolutions_calibrates_them_in_the_same_render(monkeypatch):
    from t2v.loader import assemble

    monkeypatch.setattr(fp8, "unavailable", lambda device: None)
    monkeypatch.setattr(Fp8Linear, "forward", lambda self, x, rows=slice(None): self.reference(x, rows).to(x.dtype))
    config = tiny_config()
    states = {name: module.state_dict() for name, module in build_modules(config, device="cpu").items()}
    pipe = assemble(config, states, {n: f"random:{n}" for n in states}, "cpu", "fp8", fp8_convs=True)
    convs = [m for m in pipe.unet.modules() if isinstance(m, fp8.Fp8Conv3x3)]
    assert convs and all(m.calibrated and float(m.input_amax) > 0 for m in convs)
    result = pipe.generate(pipe.request("a cat", steps=2, seed=3))
    assert torch.isfinite(result.latents).all()
