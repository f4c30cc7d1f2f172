"""benchmarks/full_queue.py without a model: its options, and how it counts the time the renders cover."""

from pathlib import Path

import pytest

from tests.scripts import load_script


def _full_queue():
    return load_script(Path("benchmarks") / "full_queue.py")


@pytest.mark.parametrize(("flags", "says"), [
    (["--batch-max", "0"], "--batch-max 0 is outside BATCH_MAX's range, 1–16"),
    (["--batch-max", "2", "17"], "--batch-max 17 is outside BATCH_MAX's range, 1–16"),
    (["--users", "0"], "--users=0 must be at least 1"),
    (["--jobs", "0"], "--jobs=0 must be at least 1"),
    (["--compile-wait-s", "-1"], "--compile-wait-s=-1 must be 0 or more seconds"),
    (["--max-frames", "65"], "--max-frames=65 is outside the frames a video may have, 1–64"),
    (["--backend", "inducter"], "--backend inducter: not a torch.compile backend; use one of "),
])
def test_bad_options_stop_before_any_work_and_name_the_value(flags, says, capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        _full_queue().main(["--cache", str(tmp_path), "--device", "cpu", "--tiny", *flags])
    assert stopped.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.parametrize(("spans", "covered"), [
    ([], 0.0),
    ([(0.0, 2.0), (3.0, 4.0)], 3.0),  # a gap between two units is not covered
    ([(0.0, 2.0), (1.0, 3.0)], 3.0),  # two workers' units overlapping count once
    ([(1.0, 5.0), (2.0, 3.0), (6.0, 7.0)], 5.0),  # one inside another
])
def test_the_time_covered_by_renders_counts_each_second_once(spans, covered):
    assert _full_queue()._covered(spans) == covered
