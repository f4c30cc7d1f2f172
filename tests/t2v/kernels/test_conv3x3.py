"""t2v.kernels.conv3x3: the implicit-GEMM 3×3 convolution equals F.conv2d on every border, tile remainder and operand
dtype (on the CPU, in Triton's interpreter: tests/conftest.py), as a custom op too, and refuses what it cannot take in
one line."""

import pytest
import torch
import torch.nn.functional as F

from t2v.kernels import conv3x3, fp8

pytestmark = pytest.mark.skipif(not conv3x3.INTERPRETED,
                                reason="needs TRITON_INTERPRET=1 when Triton is first imported")
SMALL = (16, 16, 64, 4, 1)  # tiles the interpreter runs quickly; the GPU's come from config_for


def _operands(n: int, c_in: int, h: int, w: int, c_out: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, h, w, generator=g).contiguous(memory_format=torch.channels_last)
    return x, torch.randn(c_out, c_in, 3, 3, generator=g) / (3 * c_in**0.5), torch.randn(c_out, generator=g)


@pytest.mark.parametrize(("n", "c_in", "h", "w", "c_out", "config"), [
    (2, 64, 5, 7, 40, SMALL),  # odd sizes: every border tap masked, C_out and pixels off the tiles
    (1, 128, 4, 4, 64, (32, 32, 128, 4, 1)),  # a K step of 128 channels: one tap per step
    (3, 64, 1, 9, 16, (32, 16, 64, 4, 1)),  # one row: the taps above and below all out of the image
    (2, 64, 8, 10, 32, SMALL),  # 10 row tiles: more than GROUP_M, so the launch order wraps into a second group
])
def test_the_kernel_is_the_convolution_on_every_border(n, c_in, h, w, c_out, config):
    x, weight, bias = _operands(n, c_in, h, w, c_out)
    got = conv3x3.conv3x3(x, conv3x3.weight_rows(weight), torch.tensor(1.0), bias, torch.float32, config)
    assert got.shape == (n, c_out, h, w) and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, F.conv2d(x, weight, bias, padding=1), rtol=1e-4, atol=1e-4)


def test_fp16_operands_and_output():
    x, weight, bias = _operands(2, 64, 5, 6, 24)
    x, weight, bias = x.half(), weight.half(), bias.half()
    got = conv3x3.conv3x3(x, conv3x3.weight_rows(weight), torch.tensor(1.0), bias, torch.float16, SMALL)
    assert got.dtype == torch.float16
    exact = F.conv2d(x.float(), weight.float(), bias.float(), padding=1)
    torch.testing.assert_close(got.float(), exact, rtol=2e-3, atol=2e-3)


def test_fp8_operands_give_their_products_scaled_in_the_output_dtype():
    x, weight, bias = _operands(2, 64, 6, 5, 48)
    values, x_scale = fp8.quantize(x.permute(0, 2, 3, 1), "tensor")
    values = values.permute(0, 3, 1, 2)  # e4m3, channels-last
    w_values, w_scale = fp8.quantize(conv3x3.weight_rows(weight), "tensor")
    scale = (x_scale * w_scale).reshape(())
    got = conv3x3.conv3x3(values, w_values, scale, bias.half(), torch.float16, SMALL)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), conv3x3.reference(values, w_values, scale, bias.half()),
                               rtol=2e-3, atol=2e-3)  # the interpreter sums exactly: the fp16 output's rounding only
    exact = F.conv2d(x, weight, bias, padding=1)
    assert float((got.float() - exact).norm() / exact.norm()) < 0.06  # e4m3's rounding of both operands


def test_an_input_that_is_not_channels_last_is_laid_out_first():
    x, weight, _ = _operands(1, 64, 4, 6, 16)
    got = conv3x3.conv3x3(x.contiguous(), conv3x3.weight_rows(weight), torch.tensor(1.0), None, torch.float32, SMALL)
    torch.testing.assert_close(got, F.conv2d(x, weight, None, padding=1), rtol=1e-4, atol=1e-4)


def test_the_custom_op_is_the_kernel_and_its_fake_is_channels_last():
    x, weight, bias = _operands(1, 64, 8, 8, 32)
    w = conv3x3.weight_rows(weight)
    got = torch.ops.t2v.conv3x3(x, w, torch.tensor(1.0), bias, torch.float32)
    torch.testing.assert_close(got, F.conv2d(x, weight, bias, padding=1), rtol=1e-4, atol=1e-4)
    with torch._subclasses.FakeTensorMode() as mode:
        fake = torch.ops.t2v.conv3x3(mode.from_tensor(x), mode.from_tensor(w), mode.from_tensor(torch.tensor(1.0)),
                                     None, torch.float16)
    assert fake.shape == (1, 32, 8, 8) and fake.dtype == torch.float16
    assert fake.stride() == got.stride()


def test_the_tiles_follow_the_size_and_the_channel_step_divides_the_channels():
    assert conv3x3.config_for(512, 1280) == (64, 64, 128, 4, 4)  # a 4×4 latent's 32 images: few pixels
    assert conv3x3.config_for(2048, 1280) == (128, 64, 64, 4, 4)
    assert conv3x3.config_for(32768, 640) == (128, 128, 128, 8, 4)
    assert conv3x3.config_for(32768, 320)[2] == 64  # 320 channels: 5 steps of 64, not 2.5 of 128
    assert conv3x3.config_for(32768, 640, operand_bytes=2)[2] == 64  # fp16 operands: twice the bytes a step
    assert all(conv3x3.fits(c, conv3x3.config_for(p, c)[2]) for c in (64, 320, 640, 960, 1280, 1920, 2560)
               for p in (512, 4096, 65536))


def test_what_the_kernel_cannot_take_is_refused_in_one_line():
    x, weight, _ = _operands(1, 64, 4, 4, 16)
    with pytest.raises(ValueError, match=r"^a 3×3 convolution's weight, got 1×1$"):
        conv3x3.weight_rows(weight[:, :, :1, :1])
    rows = conv3x3.weight_rows(weight)
    with pytest.raises(ValueError, match=r"^conv3x3: weight \(16, 576\) strides \(576, 1\) for x \(1, 64, 4, 4\): "
                                         r"needs a contiguous \[C_out, 9·C_in\] \(weight_rows\) and C_in a multiple "
                                         r"of BLOCK_K 128$"):
        conv3x3.conv3x3(x, rows, torch.tensor(1.0), None, torch.float32, (16, 16, 128, 4, 1))
    with pytest.raises(ValueError, match=r"strides \(1, 16\) .* needs a contiguous"):  # a transposed copy
        conv3x3.conv3x3(x, rows.t().contiguous().t(), torch.tensor(1.0), None, torch.float32, SMALL)
