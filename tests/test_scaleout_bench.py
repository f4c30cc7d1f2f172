"""benchmarks/scaleout.py on the CPU: two workers of the tiny model through the bot's executor (a smoke test, no
speed asserted)."""

import json
from pathlib import Path

import pytest

from tests.scripts import load_script


def _scaleout():
    return load_script(Path("benchmarks") / "scaleout.py")


def test_scaleout_times_one_then_two_workers_and_renders_real_mp4s(tmp_path, capsys):
    out, videos = tmp_path / "scaleout.json", tmp_path / "videos"
    _scaleout().main(["--tiny", "--devices", "cpu,cpu", "--videos", "4", "--steps", "2", "--frames", "4",
                      "--size", "64", "--out", str(out), "--save-videos", str(videos)])

    report = json.loads(out.read_text())
    phases = report["results"]["phases"]
    assert [p["workers"] for p in phases] == [1, 2]
    assert [p["devices"] for p in phases] == [["cpu"], ["cpu", "cpu"]]
    assert all(p["videos"] == 4 and len(p["video_bytes"]) == 4 and p["seconds"] > 0 for p in phases)
    assert report["results"]["speedup"] > 0 and report["args"]["steps"] == 2
    mp4s = sorted(videos.glob("*.mp4"))
    assert len(mp4s) == 8
    assert all(path.read_bytes()[4:8] == b"ftyp" for path in mp4s)
    assert "| 2 | cpu,cpu | 4 |" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "says"), [
    (["--size", "9"], "width=9 is outside the allowed range 64–1024"),
    (["--videos", "0"], "--videos (0) and --repeats (1) must be at least 1"),
    (["--devices", "gpu0"], "T2V_DEVICE=gpu0 is not cuda, cuda:N, cpu or a comma-separated list of them"),
])
def test_bad_options_stop_before_any_work_and_name_the_value(flags, says, capsys):
    with pytest.raises(SystemExit) as stopped:
        _scaleout().main(["--tiny", "--devices", "cpu", *flags])
    assert stopped.value.code == 2 and says in capsys.readouterr().err
