"""benchmarks/conv3x3_forms.py without a GPU: the shapes it times are the video's, and bad options stop it in one
line before any work."""

from pathlib import Path

import pytest

from tests.scripts import load_script


def _forms():
    return load_script(Path("benchmarks") / "conv3x3_forms.py")


def test_the_standard_videos_3x3_convolutions_are_found_with_their_counts():
    shapes = _forms().video_shapes(16, 256, 256)  # the real-size UNet on the meta device: no weights, no GPU
    assert sum(shapes.values()) == 48 and len(shapes) == 17  # 47 the fp8 variant swaps, and the last (→ 4 channels)
    assert shapes[(32, 320, 32, 32, 320)] == 7 and shapes[(32, 1280, 4, 4, 1280)] == 11
    assert all(c_in >= 64 for _, c_in, _, _, _ in shapes)  # not the first convolution (4 channels in)
    wide = _forms().video_shapes(24, 320, 576)
    assert (48, 320, 40, 72, 320) in wide and sum(wide.values()) == 48


@pytest.mark.parametrize(("flags", "says"), [
    (["--frames", "65"], "--frames 65 is outside the allowed range 1–64"),
    (["--size", "256", "200"], "--size 200 must be a multiple of 64"),
    ([], "it times kernels on a CUDA GPU, and torch sees none here"),
])
def test_bad_options_and_a_machine_without_a_gpu_stop_before_any_work(flags, says, capsys):
    with pytest.raises(SystemExit) as stopped:
        _forms().options(flags)
    assert stopped.value.code == 2 and says in capsys.readouterr().err.splitlines()[-1]
