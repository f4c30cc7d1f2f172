"""t2v.kernels.geglu: the GEMM that gates in its epilogue equals GEGLU's Linear then value · GELU(gate) on every tile
remainder, in fp16 and in e4m3 (in and out), as a custom op too, and refuses what it cannot take in one line (on the
CPU, in Triton's interpreter: tests/conftest.py)."""

import pytest
import torch

from t2v.kernels import fp8, geglu
from t2v.unet import GEGLU
from tests.t2v.helpers import as_interpreted_e4m3

pytestmark = pytest.mark.skipif(not geglu.INTERPRETED, reason="needs TRITON_INTERPRET=1 when Triton is first imported")
ONE = torch.tensor(1.0)
SMALL = (16, 16, 32, 4, 1)  # tiles the interpreter runs quickly; the GPU's come from config_for


def _operands(m: int, k: int, hidden: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, k, generator=g), torch.randn(2 * hidden, k, generator=g) / k**0.5,
            torch.randn(2 * hidden, generator=g) * 0.5)


@pytest.mark.parametrize(("m", "k", "hidden", "config"), [
    (37, 64, 24, SMALL),  # rows and hidden columns off the tiles: masked on both
    (16, 32, 16, SMALL),  # one tile, one K step
    (200, 64, 16, SMALL),  # 13 row tiles: more than GROUP_M, so the launch order wraps into a second group
    (8, 128, 40, (16, 32, 64, 4, 1)),  # a hidden width that is not a multiple of the column tile
])
def test_the_kernel_is_the_linear_layer_then_the_gate(m, k, hidden, config):
    layer = GEGLU(k, hidden)
    x, weight, bias = _operands(m, k, hidden)
    layer.proj.weight.data, layer.proj.bias.data = weight, bias
    got = geglu.geglu(x, weight, ONE, ONE, bias, torch.float32, None, config)
    assert got.shape == (m, hidden) and got.dtype == torch.float32
    torch.testing.assert_close(got, layer(x), rtol=1e-4, atol=1e-4)


def test_leading_dimensions_are_kept_and_no_bias_is_taken():
    x, weight, _ = _operands(2 * 3 * 5, 32, 16)
    got = geglu.geglu(x.reshape(2, 3, 5, 32), weight, ONE, ONE, None, torch.float32, None, SMALL)
    assert got.shape == (2, 3, 5, 16)
    torch.testing.assert_close(got.reshape(30, 16), geglu.reference(x, weight, ONE, ONE, None))


def test_fp16_operands_and_output():
    x, weight, bias = (t.half() for t in _operands(40, 64, 32))
    got = geglu.geglu(x, weight, ONE, ONE, bias, torch.float16, None, SMALL)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), geglu.reference(x, weight, ONE, ONE, bias), rtol=2e-3, atol=2e-3)


def test_e4m3_operands_give_the_gated_product_cast_to_e4m3_by_the_next_layers_scale():
    x, weight, bias = _operands(40, 64, 32)
    x_q, x_scale = fp8.quantize(x, "tensor")
    w_q, w_scale = fp8.quantize(weight, "tensor")
    x_scale, w_scale = x_scale.reshape(()), w_scale.reshape(())
    exact = geglu.reference(x_q, w_q, x_scale, w_scale, bias.half())
    for out_scale in ((exact.abs().amax() / 1000).reshape(()),  # values past e4m3's 448: they clamp, not overflow
                      (exact.abs().amax() * fp8.HEADROOM / fp8.E4M3_MAX).reshape(())):  # a calibrated scale
        got = geglu.geglu(x_q, w_q, x_scale, w_scale, bias.half(), fp8.E4M3, out_scale, SMALL)
        assert got.dtype == fp8.E4M3
        want = geglu.reference(x_q, w_q, x_scale, w_scale, bias.half(), out_scale)
        assert as_interpreted_e4m3(got.float(), want)
    assert float(want.abs().max()) < fp8.E4M3_MAX / 4 and float(got.float().abs().max()) > 0
    plain = geglu.gelu_gate(torch.nn.functional.linear(x, weight, bias))
    rounded = want.to(fp8.E4M3).float() * out_scale  # what the GPU writes, times the scale the next layer takes
    assert float((rounded - plain).norm() / plain.norm()) < 0.1  # e4m3 operands and output
    clamped = geglu.geglu(x_q, w_q, x_scale, w_scale, bias.half(), fp8.E4M3, out_scale / 1000, SMALL)
    assert float(clamped.float().abs().max()) == fp8.E4M3_MAX


def test_the_custom_op_takes_config_for_tiles_and_its_fake_gives_the_shape():
    x, weight, bias = _operands(24, 64, 64)
    got = torch.ops.t2v.geglu(x.half(), weight.half(), ONE, ONE, bias.half(), torch.float16, None)
    torch.testing.assert_close(got.float(), geglu.reference(x.half(), weight.half(), ONE, ONE, bias.half()),
                               rtol=2e-3, atol=2e-3)
    with torch._subclasses.FakeTensorMode():
        fake = torch.ops.t2v.geglu(torch.empty(3, 24, 64).half(), torch.empty(128, 64).half(), torch.empty(()),
                                   torch.empty(()), None, torch.float16, None)
    assert fake.shape == (3, 24, 64) and fake.dtype == torch.float16


@pytest.mark.parametrize(("weight_shape", "config", "out_dtype", "problem"), [
    ((48, 64), SMALL, torch.float32, None),
    ((47, 64), SMALL, torch.float32, "contiguous [2·H, 64] weight, got (47, 64)"),
    ((48, 48), SMALL, torch.float32, "contiguous [2·H, 64] weight, got (48, 48)"),
    ((48, 64), (16, 16, 128, 4, 1), torch.float32, "an input width that BLOCK_K 128 divides, got 64"),
    ((48, 64), SMALL, "e4m3", "out_scale for an e4m3 output"),
])
def test_what_it_cannot_take_is_named_in_one_line(weight_shape, config, out_dtype, problem):
    x = torch.randn(8, 64)
    out_dtype = fp8.E4M3 if out_dtype == "e4m3" else out_dtype
    if problem is None:
        assert geglu.geglu(x, torch.randn(weight_shape), ONE, ONE, None, out_dtype, None, config).shape == (8, 24)
        return
    with pytest.raises(ValueError, match=r"^geglu: needs ") as err:
        geglu.geglu(x, torch.randn(weight_shape), ONE, ONE, None, out_dtype, None, config)
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_a_weight_in_another_dtype_is_refused():
    with pytest.raises(ValueError, match=r"weight in the input's dtype torch\.float16, got torch\.float32"):
        geglu.geglu(torch.randn(8, 64).half(), torch.randn(48, 64), ONE, ONE, None, torch.float16, None,
                    SMALL)


def test_config_for_picks_k_steps_that_divide_the_width():
    for m, k, hidden in ((512, 1280, 5120), (32768, 320, 1280), (8192, 640, 2560), (16, 320, 64)):
        for operand_bytes in (1, 2):
            cfg = geglu.config_for(m, k, hidden, operand_bytes)
            assert geglu.fits(k, cfg[2]) and cfg in geglu.CONFIGS
    assert geglu.config_for(32768, 320, 1280, 1) == (64, 64, 64, 4, 4)  # e4m3, 5 steps of K: the small tiles won
    assert geglu.config_for(32768, 1280, 5120, 1)[2] == 128  # e4m3 and a long K loop: 128 a step
    assert geglu.config_for(32768, 512, 2048, 2) == (128, 128, 64, 8, 3)  # fp16: 10–20% ahead of 128 × 64 tiles
