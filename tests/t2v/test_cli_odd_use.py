"""`python -m t2v` used as a stranger uses it in a first hour: its output piped, its terminal gone, its folder moved
while it renders. A finished video is never lost, nor reported as a failure, because of what happens around it."""

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

import t2v.cli
from t2v.cli import main
from tests.t2v.helpers import refused

ROOT = Path(__file__).resolve().parents[2]


class Broken(io.TextIOBase):
    """A stream every write to which fails as `error` (a pipe read no more, a full disk)."""

    def __init__(self, error: OSError):
        self.error = error

    def write(self, text: str) -> int:
        raise self.error

    def flush(self) -> None:
        raise self.error


def is_mp4(path: Path) -> bool:
    return path.read_bytes()[4:8] == b"ftyp"


def test_a_stdout_whose_encoding_lacks_a_character_of_the_name_still_reports_the_written_video(
        tmp_path, monkeypatch, capsys):
    # PYTHONIOENCODING=ascii or an ISO-8859-1 locale: the video was written, then "error: 'ascii' codec can't encode
    # characters", exit status 2 (as for a bad value)
    out = tmp_path / "panda-🐼.mp4"
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert main(["generate", "a panda", "-o", str(out), "--steps", "1"]) == 0
    assert is_mp4(out)
    assert f"wrote {out} (4 frames 64×64, seed " in capsys.readouterr().err


def test_a_full_stdout_is_not_taken_for_a_video_that_could_not_be_written(tmp_path, monkeypatch, capsys):
    # `> /dev/full`: the video was written, then "error: [Errno 28] No space left on device", exit status 1
    out = tmp_path / "x.mp4"
    monkeypatch.setattr(sys, "stdout", Broken(OSError(errno.ENOSPC, "No space left on device")))
    assert main(["generate", "a cat", "-o", str(out), "--steps", "1"]) == 0
    assert is_mp4(out)
    err = capsys.readouterr().err
    assert f"wrote {out} (" in err and "error" not in err


def test_convert_reports_its_export_on_stderr_when_stdout_is_gone(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", Broken(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    assert capsys.readouterr().err == f"wrote {tmp_path / 'export'}\n"


def test_a_pipe_closed_before_the_last_line_leaves_a_finished_run(tmp_path):
    # `python -m t2v generate … | head -c0`: "error: [Errno 32] Broken pipe" after the video was written, exit 1
    out = tmp_path / "x.mp4"
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "t2v", "generate", "a cat", "-o", str(out), "--steps", "1"],
                                stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=300)
    finally:
        os.close(write)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out} (4 frames" in result.stderr
    assert "error" not in result.stderr and "Exception ignored" not in result.stderr
    assert is_mp4(out)


def test_a_progress_bar_that_cannot_be_shown_does_not_stop_the_render(tmp_path, monkeypatch, capsys):
    # `… 2>&1 | head -1`: the bar's first write to the closed pipe ended the render, and the video was lost
    out = tmp_path / "x.mp4"
    monkeypatch.setattr(sys, "stderr", Broken(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert main(["generate", "a cat", "-o", str(out), "--steps", "2"]) == 0
    assert is_mp4(out)
    assert f"wrote {out} (" in capsys.readouterr().out


@pytest.fixture
def folder_gone_while_rendering(monkeypatch):
    """Removes the named folder between the checks and the write, as a user tidying up (or a lost mount) would."""
    encode = t2v.cli.encode_mp4
    gone: list[Path] = []

    def remove_then_encode(frames, fps):
        for folder in gone:
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
        return encode(frames, fps)

    monkeypatch.setattr(t2v.cli, "encode_mp4", remove_then_encode)
    return gone


def test_a_folder_removed_while_rendering_keeps_the_video_in_the_current_one(tmp_path, monkeypatch, capsys,
                                                                            folder_gone_while_rendering):
    # the render was thrown away: "could not write out/x.mp4 (No such file or directory); nothing was written there"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "video.mp4").write_bytes(b"an earlier video")
    folder_gone_while_rendering.append(tmp_path / "out")
    assert main(["generate", "a cat", "-o", "out/x.mp4", "--steps", "1", "--seed", "7"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert errors == ["error: could not write out/x.mp4 (No such file or directory); the video is kept as "
                      "video-2.mp4 instead (4 frames 64×64, seed 7)"]
    assert (tmp_path / "video.mp4").read_bytes() == b"an earlier video"
    with av.open(str(tmp_path / "video-2.mp4")) as container:
        assert len(list(container.decode(video=0))) == 4


def test_with_the_current_folder_gone_too_the_video_is_kept_in_the_temporary_folder(tmp_path, monkeypatch, capsys,
                                                                                   folder_gone_while_rendering):
    here, temporary = tmp_path / "here", tmp_path / "tmp"
    here.mkdir(), temporary.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setattr("tempfile.tempdir", str(temporary))
    folder_gone_while_rendering.append(here)
    assert main(["generate", "a cat", "--steps", "1", "--seed", "7"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert errors == [f"error: could not write video.mp4 (No such file or directory); the video is kept as "
                      f"{temporary / 'video.mp4'} instead (4 frames 64×64, seed 7)"]
    assert is_mp4(temporary / "video.mp4")


def test_the_progress_bar_is_drawn_in_the_characters_stderr_can_show(tmp_path, capsys):
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--steps", "2"]) == 0
    assert "██████████| 2/2 [" in capsys.readouterr().err  # not "##########": the bar's stream names its encoding


@pytest.mark.parametrize(("value", "line"), [
    # ". holds neither pytorch_lora_weights.safetensors nor pytorch_lora_weights.bin": the current folder, never named
    (":0.8", "--lora :0.8: names no file before the scale; write PATH:SCALE, e.g. style.safetensors:0.8"),
    (":", "--lora :: names no file before the scale; write PATH:SCALE, e.g. style.safetensors:0.8"),
    # "the scale inf is not a finite number", and nothing of what would be right
    ("style.safetensors:inf", "--lora style.safetensors:inf: the scale inf is not a finite number; a style's scale "
                              "is above 0 and at most 2 (1: as trained)"),
])
def test_a_lora_value_without_a_file_or_with_an_infinite_scale_says_what_is_right(tmp_path, monkeypatch, capsys,
                                                                                   no_work, value, line):
    from safetensors.torch import save_file
    from torch import zeros

    monkeypatch.chdir(tmp_path)
    save_file({"lora_up.weight": zeros(1)}, tmp_path / "style.safetensors")
    save_file({"lora_up.weight": zeros(1)}, tmp_path / "pytorch_lora_weights.safetensors")  # what "." would find
    assert main(["generate", "a cat", "--lora", value]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {line}"]


@pytest.mark.parametrize(("frames", "width", "height", "fps"), [(1, 64, 64, 1), (7, 192, 64, 60), (3, 64, 320, 8)])
def test_the_video_plays_as_asked_at_odd_lengths_sizes_and_rates(tmp_path, capsys, frames, width, height, fps):
    # "wrote x.mp4 (1 frames 64×64, …)"
    out = tmp_path / "x.mp4"
    argv = ["--frames", str(frames), "--width", str(width), "--height", str(height), "--fps", str(fps)]
    assert main(["generate", "a cat", "-o", str(out), "--steps", "1", "--seed", "3", *argv]) == 0
    length = "1 frame" if frames == 1 else f"{frames} frames"
    assert capsys.readouterr().out.startswith(f"wrote {out} ({length} {width}×{height}, seed 3, ")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (stream.width, stream.height, len(decoded), stream.average_rate) == (width, height, frames, fps)
        assert container.duration == pytest.approx(frames / fps * 1_000_000, abs=1_000)  # µs
    assert all((frame.width, frame.height) == (width, height) for frame in decoded)


@pytest.mark.parametrize(("height", "width"), [(2, 2), (6, 10), (66, 130)])
def test_encode_mp4_of_even_sizes_no_codec_block_divides_reads_back_whole(height, width):
    from t2v.video import encode_mp4

    pixels = np.random.default_rng(0).integers(0, 256, (5, height, width, 3), dtype=np.uint8)
    with av.open(io.BytesIO(encode_mp4(pixels, fps=7))) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert [frame.shape for frame in decoded] == [(height, width, 3)] * 5


@pytest.mark.parametrize(("setting", "line"), [
    # a traceback of 40 lines from huggingface_hub's import (open_clip loads it), before any option was read
    ("HF_HUB_ETAG_TIMEOUT=abc", "error: python -m t2v could not start: HF_HUB_ETAG_TIMEOUT=abc is refused by "
                                "huggingface_hub (ValueError: invalid literal for int() with base 10: 'abc'); correct "
                                "it, or unset it"),
    ("TORCH_LOGS=nonsense", "error: python -m t2v could not start: TORCH_LOGS=nonsense is refused by torch "
                            "(ValueError: Invalid log settings: nonsense, must be a comma separated list of fully "
                            "qualified module names, registered log names or registered artifact names.); correct it, "
                            "or unset it"),
    # tqdm's class reads TQDM_* as it is defined (torch imports it): a traceback ending in tqdm/utils.py
    ("TQDM_MININTERVAL=abc", "error: python -m t2v could not start: TQDM_MININTERVAL=abc is refused by tqdm "
                             "(ValueError: could not convert string to float: 'abc'); correct it, or unset it"),
    # torch aborted as it loaded: "terminate called after throwing an instance of 'c10::Error'" and 50 C++ frames
    ("PYTORCH_CUDA_ALLOC_CONF=expandable_segments",
     "error: PYTORCH_CUDA_ALLOC_CONF='expandable_segments': 'expandable_segments' has no value; torch reads key:value "
     "pairs separated by commas (e.g. expandable_segments:True) and would stop at load; correct it, or unset it"),
])
def test_a_library_setting_the_library_refuses_at_load_is_one_line_naming_it(tmp_path, setting, line):
    name, _, value = setting.partition("=")
    result = subprocess.run([sys.executable, "-m", "t2v", "generate", "a cat", "-o", str(tmp_path / "x.mp4")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300, env={**os.environ, name: value})
    assert (result.returncode, result.stderr.splitlines()) == (2, [line])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["", "expandable_segments:True", "expandable_segments:True,",
                                   "max_split_size_mb:128, garbage_collection_threshold:0.6",
                                   "roundup_power2_divisions:[256:1,512:2,1024:4,>:8],backend:native"])
def test_allocator_settings_torch_takes_are_let_through(value):
    from t2v.cli_environment import allocator_problem

    assert allocator_problem({"PYTORCH_CUDA_ALLOC_CONF": value}) is None


def test_an_import_that_fails_without_naming_a_setting_keeps_its_traceback():
    from t2v.cli_environment import refused_setting

    broken = ImportError("libcudnn.so.9: cannot open shared object file")
    assert refused_setting(broken, {"HF_HOME": "/data/hf", "TORCH_HOME": "/data/torch"}) is None


@pytest.mark.parametrize(("argv", "read"), [
    (["generate", "a cat", "--sampler", "DDIM", "--device", "CPU", "--dtype", "FP16"],
     {"sampler": "ddim", "device": "cpu", "dtype": "fp16"}),
    (["generate", "a cat", "--device", "CUDA:1", "--dtype", "Float32"], {"device": "cuda:1", "dtype": "float32"}),
    (["convert", "tiny-random", "out", "--dtype", "BF16"], {"dtype": "bf16"}),
    (["bench", "--device", "Cuda"], {"device": "cuda"}),
])
def test_named_choices_are_read_in_any_case_as_the_bots_settings_are(argv: list[str], read: dict[str, str]):
    """`--dtype FP16` was "not a dtype t2v knows" and `--sampler DDIM` "not one of ddim, dpmpp-2m", while the bot
    takes T2V_DTYPE=FP16."""
    from t2v.cli_parser import build_parser

    parsed = vars(build_parser().parse_args(argv))
    assert {name: parsed[name] for name in read} == read


@pytest.fixture
def no_bench(monkeypatch):
    """Fails the test if bench starts its runs."""
    from t2v.bench import main as bench

    monkeypatch.setattr(bench, "run", lambda args: pytest.fail("the benchmark started"))


@pytest.mark.parametrize("device", ["cpu", "CPU", "cpu:0"])
def test_bench_on_the_cpu_at_full_size_is_refused_naming_tiny(capsys, no_bench, device):
    # was hours of timing the full-size networks on the CPU, the first line a minute in
    assert refused(["bench", "--device", device, "--no-diffusers"], capsys) == [
        f"error: --device {device.lower()}: bench times the full-size networks, which takes hours on the CPU; add "
        "--tiny to time the tiny random network (a smoke test), or run it on a GPU (--device cuda)"]


def test_bench_without_a_gpu_sends_the_user_to_the_tiny_network_on_the_cpu(monkeypatch, capsys, no_bench):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # "use --device cpu": refused in turn, unless tiny
    assert refused(["bench", "--no-diffusers"], capsys) == [
        "error: --device cuda: no CUDA GPU is available on this machine; use --device cpu --tiny"]
    assert refused(["bench", "--tiny", "--no-diffusers"], capsys) == [
        "error: --device cuda: no CUDA GPU is available on this machine; use --device cpu"]


@pytest.mark.parametrize("repeats", ["0", "-1", "101", "1000000000000000000000"])
def test_bench_repeats_beyond_its_range_are_refused_naming_it(capsys, no_bench, repeats):
    # 10**21 was taken, and the run would never end
    assert refused(["bench", "--tiny", "--device", "cpu", "--no-diffusers", f"--repeats={repeats}"], capsys) == [
        f"error: --repeats {repeats}: give 1 to 100 timed runs (each renders every work size and variant once more; "
        "3 is usual)"]


def test_bench_repeats_at_the_ends_of_its_range_are_taken(monkeypatch):
    from t2v.bench import main as bench

    taken = []
    monkeypatch.setattr(bench, "run", lambda args: taken.append(args.repeats) or 0)
    for repeats in ("1", "100"):
        assert main(["bench", "--tiny", "--device", "cpu", "--no-diffusers", "--repeats", repeats]) == 0
    assert taken == [1, 100]


def test_generate_help_names_every_kind_of_lora_file_it_takes(tmp_path, capsys):
    # the help named .safetensors files and folders only, while diffusers' .bin (and a folder holding one) were taken
    import torch

    from t2v.cli_parser import build_parser
    from t2v.config import tiny_config
    from tests.t2v.lora_files import random_lora

    said = " ".join(build_parser()._commands()["generate"].format_help().split())
    assert ("a LoRA style: a .safetensors file, a PyTorch file of plain tensors (.bin, .pt; read with "
            "torch.load(weights_only=True)), or a folder with diffusers' pytorch_lora_weights.safetensors (else its "
            "pytorch_lora_weights.bin), fused at SCALE") in said
    (tmp_path / "folder").mkdir()
    for path in (tmp_path / "style.bin", tmp_path / "style.pt", tmp_path / "folder" / "pytorch_lora_weights.bin"):
        torch.save(random_lora(tiny_config(), scale=0.3), path)
    for value in ("style.bin:0.5", "style.pt", "folder"):
        out = tmp_path / f"{value.partition(':')[0]}.mp4"
        assert main(["generate", "a cat", "-o", str(out), "--steps", "1", "--lora", str(tmp_path / value)]) == 0
        assert is_mp4(out)


@pytest.mark.parametrize(("value", "line"), [
    # `-o "$name.mp4"` with $name unset: "name a .mp4 file, e.g. .mp4.mp4 (or .mp4/video.mp4 in a folder)"
    (".mp4", "--output .mp4: names no file before .mp4 (an empty shell variable?); name one, e.g. video.mp4"),
    ("out/.MP4", "--output out/.MP4: names no file before .mp4 (an empty shell variable?); name one, e.g. "
                 "out/video.mp4"),
])
def test_an_output_that_is_only_the_extension_asks_for_a_name(tmp_path, monkeypatch, capsys, no_work, value, line):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    assert refused(["generate", "a cat", "-o", value], capsys) == [f"error: {line}"]
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]


def test_bench_names_empty_and_padded_values_quoted(capsys, no_bench):
    # "--backend : not a torch.compile backend" and "--variants : not a variant": the value did not show
    lines = refused(["bench", "--tiny", "--device", "cpu", "--no-diffusers", "--backend", "", "--variants", "",
                     " bf16"], capsys)
    assert lines[0].startswith("error: --backend '': not a torch.compile backend; use one of ")
    assert lines[1:] == [f"error: --variants {shown}: not a variant; use any of triton-attention, sdpa-attention, "
                         "triton-ff, fp8-plain-ff, autotune, fp8, fp8-row, fp8-tensor, fp8-all, fp8-conv, "
                         "library-groupnorm, bf16"
                         for shown in ("''", "' bf16'")]


@pytest.mark.parametrize("deadline", ["", "soon"])
def test_bench_deadline_that_is_no_number_says_the_range_it_takes(capsys, no_bench, deadline):
    # "write one of 0 or more", and 0 was then refused: "must be a positive number of seconds"
    assert refused(["bench", "--tiny", "--device", "cpu", "--no-diffusers", "--deadline-s", deadline], capsys) == [
        f"error: argument --deadline-s: {deadline!r} is not a number; write one above 0"]


@pytest.mark.parametrize(("argv", "option", "value"), [
    (["convert", "tiny-random", "gone"], "destination", "gone"),
    (["convert", "tiny-random", "gone/export"], "destination", "gone/export"),
    (["download", "gone"], "directory", "gone"),
    (["bench", "--tiny", "--device", "cpu", "--no-diffusers", "--out", "gone"], "--out", "gone"),
    (["generate", "a cat", "-o", "gone/x.mp4"], "--output", "gone/x.mp4"),
])
def test_a_folder_named_through_a_link_that_points_nowhere_is_one_line_before_any_work(
        tmp_path, monkeypatch, capsys, no_work, no_bench, argv, option, value):
    # convert: "could not write the export to gone (NotADirectoryError)" after the work; bench: "[Errno 17] File
    # exists: 'gone'"; generate: "the folder gone does not exist; create it first", which mkdir then refused
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gone").symlink_to(tmp_path / "removed")
    assert refused(argv, capsys) == [f"error: {option} {value}: gone is a link to {tmp_path / 'removed'}, which does "
                                     "not exist; create that folder, or name another place"]
    assert [path.name for path in tmp_path.iterdir()] == ["gone"]
