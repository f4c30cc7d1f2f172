"""`python -m t2v …` as a user runs it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest

from t2v.cli import main
from t2v.errors import current_user

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The real entry point in a fresh process, logging at INFO (so a model load would show as a line)."""
    return subprocess.run([*prefix, sys.executable, "-m", "t2v", "-v", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def file_modes_apply() -> tuple[str, ...]:
    """A command prefix under which file modes hold: none for a user; root drops its read/write override."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root reads and writes any file; dropping CAP_DAC_OVERRIDE needs setpriv (util-linux)")
    return (setpriv, "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search")


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


def test_convert_writes_files_everyone_may_read(tmp_path):
    previous = os.umask(0o022)
    try:
        assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    finally:
        os.umask(previous)
    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "export").iterdir()}
    assert modes == dict.fromkeys(["t2v_model.json", "unet.safetensors", "vae.safetensors",
                                   "text_encoder.safetensors"], 0o644)


def test_an_unreadable_export_file_is_permission_denied_naming_the_file_and_user(tmp_path):
    prefix = file_modes_apply()
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    locked = tmp_path / "export" / "vae.safetensors"
    locked.chmod(0)
    result = run_cli("generate", "a cat", "--model", str(tmp_path / "export"), "-o", str(tmp_path / "x.mp4"),
                     prefix=prefix)
    assert result.returncode == 2 and not (tmp_path / "x.mp4").exists()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {locked}: permission denied for user {current_user()}; make it readable "
                      "to that user (e.g. chmod a+r, or a+rx for a folder) or run as a user who may read it"]
    assert "corrupt" not in result.stderr


def test_convert_then_generate_from_the_export(tmp_path, capsys):
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    out = tmp_path / "y.mp4"
    assert main(["generate", "a cat", "--model", str(tmp_path / "export"), "-o", str(out), "--steps", "1"]) == 0
    assert out.stat().st_size > 0


def test_download_without_internet_fails_with_a_clear_message(tmp_path):
    result = subprocess.run([sys.executable, "-m", "t2v", "download", str(tmp_path / "weights")],
                            capture_output=True, text=True, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": ""},
                            cwd=ROOT)
    assert result.returncode == 1
    assert "could not download" in result.stderr and "internet" in result.stderr
