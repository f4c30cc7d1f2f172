"""benchmarks/geglu_forms.py without a GPU: the feed-forward shapes it times are the video's, and bad options stop it
in one line before any work."""

from pathlib import Path

import pytest

from tests.scripts import load_script


def _forms():
    return load_script(Path("benchmarks") / "geglu_forms.py")


def test_the_feedforward_shapes_of_a_call_are_found_with_their_counts():
    shapes = _forms().video_shapes(1, 16, 256, 256)  # the real-size UNet on the meta device: no weights, no GPU
    # (tokens, channels in, hidden): 2 guided rows × 16 frames × the level's pixels; spatial and temporal alike
    assert shapes == {(32768, 320, 1280): 10, (8192, 640, 2560): 10, (2048, 1280, 5120): 10, (512, 1280, 5120): 2,
                      (32768, 512, 2048): 1}
    batch = _forms().video_shapes(16, 16, 256, 256)
    assert batch[(16 * 32768, 320, 1280)] == 10 and sum(batch.values()) == 33


@pytest.mark.parametrize(("flags", "says"), [
    (["--batch", "0"], "argument --batch: '0': videos a call, a whole number 1–64"),
    (["--batch", "two"], "argument --batch: 'two': videos a call, a whole number 1–64"),
    (["--frames", "65"], "--frames 65 is outside the allowed range 1–64"),
    ([], "it times kernels on a CUDA GPU, and torch sees none here"),
])
def test_bad_options_and_a_machine_without_a_gpu_stop_before_any_work(flags, says, capsys):
    with pytest.raises(SystemExit) as stopped:
        _forms().options(flags)
    assert stopped.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(says)
