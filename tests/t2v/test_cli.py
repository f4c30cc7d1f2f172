"""`python -m t2v …` as a user runs it."""

import subprocess
import sys

import av

from t2v.cli import main


def test_generate_writes_an_h264_mp4_with_the_requested_frames(tmp_path, capsys):
    out = tmp_path / "x.mp4"
    code = main(["generate", "A panda eating bamboo on a rock.", "--model", "tiny-random", "-o", str(out),
                 "--steps", "2", "--frames", "5", "--width", "128", "--height", "64", "--seed", "7"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "seed 7" in printed and "noise" in printed
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert len(frames) == 5 and (frames[0].width, frames[0].height) == (128, 64)


def test_bad_option_is_one_clear_line_and_exit_2(tmp_path, capsys):
    code = main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--width", "100"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "error: width=100 must be a multiple of 64 (64, 128, …, 1024)"
    assert not (tmp_path / "x.mp4").exists()


def test_convert_then_generate_from_the_export(tmp_path, capsys):
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    out = tmp_path / "y.mp4"
    assert main(["generate", "a cat", "--model", str(tmp_path / "export"), "-o", str(out), "--steps", "1"]) == 0
    assert out.stat().st_size > 0


def test_download_without_internet_fails_with_a_clear_message(tmp_path):
    result = subprocess.run([sys.executable, "-m", "t2v", "download", str(tmp_path / "weights")],
                            capture_output=True, text=True, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert result.returncode == 1
    assert "could not download" in result.stderr and "internet" in result.stderr
