"""fp8 (e4m3) Linear layers: quantisation within e4m3's rounding, which layers are swapped, the same network after
fusing, and a refusal in one line wherever there are no fp8 tensor cores (the product itself needs a GPU)."""

import copy

import pytest
import torch
from torch import nn

from t2v import UnsupportedDevice, load_pipeline
from t2v.cli import main
from t2v.config import tiny_config
from t2v.fast import FusedAttention, fuse
from t2v.kernels import fp8
from t2v.kernels.fp8 import Fp8Linear
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
    swapped = fp8.quantize_unet(unet)
    assert len(swapped) == expected > 0
    assert any(n.endswith("attn1.to_q") for n in swapped) and any(n.endswith("ff.net.0.proj") for n in swapped)
    assert not any("time_embed" in n or "emb_layers" in n for n in swapped)
    assert isinstance(unet.time_embed[0], nn.Linear)
    assert all(isinstance(m, nn.Conv1d) for n, m in unet.named_modules() if n.endswith(("1.proj_in", "1.proj_out"))
               and "input_blocks.0" in n)  # the temporal transformers' projections stay
    assert _linears_in_transformers(unet) == 0


def test_the_fused_fp8_unet_is_the_unfused_fp8_unet(monkeypatch):
    """On the CPU the products are the fp32 reference arithmetic; fusing stacks q/k/v without requantising."""
    monkeypatch.setattr(Fp8Linear, "forward", Fp8Linear.reference)
    unet = build_modules(tiny_config(), device="cpu")["unet"].eval()
    g = torch.Generator().manual_seed(0)
    inputs = (torch.randn(1, 4, 3, 4, 4, generator=g), torch.tensor([500]), torch.randn(1, 77, 64, generator=g))
    with torch.no_grad():
        exact = unet(*inputs)
        fp8.quantize_unet(unet)
        quantised = unet(*inputs)
        fused = fuse(copy.deepcopy(unet))
        assert all(isinstance(p, Fp8Linear) for m in fused.modules() if isinstance(m, FusedAttention)
                   for p in m.projections)
        got = fused(*inputs)
    torch.testing.assert_close(got, quantised, rtol=1e-4, atol=1e-5)
    # one call of this tiny random network moves by 14% in fp8 (bf16: 3.4%); each layer by ~4% (test above)
    assert 0 < float((quantised - exact).norm() / exact.norm()) < 0.3


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
