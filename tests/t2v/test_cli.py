"""`python -m t2v …` as a user runs it: the work, and every bad value refused in one line before any work."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest
import torch

import t2v.cli
from t2v.cli import main
from t2v.errors import current_user
from tests.t2v.helpers import UNET, full_disk, modelscope_folder, refused

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


def test_generate_without_a_size_uses_the_models(tmp_path, capsys):
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--steps", "1"]) == 0
    assert "(4 frames 64×64," in capsys.readouterr().out  # tiny-random's own length and size


def test_a_bad_request_value_is_one_clear_line_and_exit_2(tmp_path, capsys, no_work):
    code = main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--width", "100"])
    assert code == 2 and capsys.readouterr().err == "error: --width 100 must be a multiple of 64 (64, 128, …, 1024)\n"
    assert not (tmp_path / "x.mp4").exists()


def test_the_prompt_may_be_given_as_an_option(tmp_path, capsys):
    assert main(["generate", "--prompt", "a cat", "-o", str(tmp_path / "x.mp4"), "--steps", "1"]) == 0
    assert (tmp_path / "x.mp4").stat().st_size > 0


@pytest.mark.parametrize(("args", "says"), [
    ([], 'error: no prompt: give it as the first argument, e.g. python -m t2v generate "A panda eating bamboo."'),
    (["a cat", "--prompt", "a dog"], "error: two prompts: 'a cat' and --prompt 'a dog'; give it once, as the first "
                                     "argument or as --prompt"),
    (["--prompt", "  "], "error: the prompt is empty: describe the video to generate"),
    (["\ufeff"], "error: the prompt is empty: '\\ufeff' holds only invisible characters; describe the video to "
                 "generate"),
    (["\x01\x02"], "error: the prompt is empty: '\\x01\\x02' holds only invisible characters; describe the video to "
                   "generate")])
def test_a_missing_doubled_or_empty_prompt_is_one_line_before_loading(tmp_path, capsys, no_work, args, says):
    assert main(["generate", *args, "-o", str(tmp_path / "x.mp4")]) == 2
    assert capsys.readouterr().err.splitlines() == [says]


def test_frames_width_and_height_0_are_each_refused_before_loading(tmp_path, capsys, no_work):
    code = main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--frames", "0", "--width", "0", "--height", "0"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == ["error: --frames 0 is outside the allowed range 1–64",
                                                    "error: --width 0 is outside the allowed range 64–1024",
                                                    "error: --height 0 is outside the allowed range 64–1024"]


def test_output_into_a_missing_folder_is_refused_before_the_model_loads(tmp_path):
    out = tmp_path / "missing" / "x.mp4"
    result = run_cli("generate", "a cat", "-o", str(out))
    assert result.returncode == 2 and not out.parent.exists()
    assert result.stderr == (f"error: --output {out}: the folder {out.parent} does not exist; create it first, "
                             "or name a file elsewhere\n")  # one line, and no INFO line: nothing was loaded


def test_output_into_a_folder_this_user_may_not_write_is_refused(tmp_path):
    prefix = file_modes_apply()
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    result = run_cli("generate", "a cat", "-o", str(folder / "x.mp4"), prefix=prefix)
    assert result.returncode == 2 and not list(folder.iterdir())
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: --output {folder / 'x.mp4'}: cannot write into {folder} as user ")
    assert line.endswith("(Permission denied); name a writable place")


def test_output_onto_a_folder_is_refused(tmp_path, capsys, no_work):
    assert main(["generate", "a cat", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: --output {tmp_path}: is a folder; name the file to write in it, "
                                       f"e.g. {tmp_path / 'video.mp4'}\n")


@pytest.mark.parametrize(("name", "suggests"), [("clip.gif", "clip.mp4"), ("clip.WEBM", "clip.mp4"),
                                               ("clip", "clip.mp4 (or {folder}/video.mp4 in a folder)")])
def test_an_output_name_that_is_not_mp4_is_refused_naming_one_that_is(name, suggests, tmp_path, capsys, no_work):
    folder = tmp_path / "clip"  # "-o clip/", with its slash, is test_cli_edges' trailing slash
    assert main(["generate", "a cat", "-o", str(tmp_path / name)]) == 2
    assert capsys.readouterr().err == (f"error: --output {tmp_path / name}: t2v writes H.264 MP4 videos; name a .mp4 "
                                       f"file, e.g. {tmp_path / suggests.format(folder=folder)}\n")
    assert not list(tmp_path.iterdir())


def test_an_upper_case_mp4_name_is_written(tmp_path):
    assert main(["generate", "a cat", "-o", str(tmp_path / "CLIP.MP4"), "--steps", "1", "--frames", "2"]) == 0
    assert (tmp_path / "CLIP.MP4").read_bytes()[4:8] == b"ftyp"  # an MP4


@pytest.mark.parametrize(("device", "says"), [
    ("tpu", "not a device name; use cpu, cuda or cuda:N"),
    ("meta", "t2v runs on cpu or cuda (cuda:N), not on meta"),
    ("cuda:99", "CUDA GPU"),  # none on this machine, or fewer than 100
])
def test_a_device_this_machine_lacks_is_one_line(tmp_path, capsys, no_work, device, says):
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--device", device]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --device {device}: ") and says in line


def test_bench_refuses_a_gpu_device_without_a_gpu_and_every_other_bad_value(tmp_path, capsys, no_work, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--steps", "0", "--repeats", "0", "--out", str(tmp_path / "f" / "g"), "--backend",
                 "inducter"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "error: --device cuda: no CUDA GPU is available on this machine; use --device cpu --tiny"
    # a misspelt backend failed every compile and the run reported its eager times as compiled
    assert lines[1].startswith("error: --backend inducter: not a torch.compile backend; use one of ")
    assert {"inductor", "aot_eager", "eager"} <= set(lines[1].split("use one of ")[1].split(", "))
    assert lines[2:] == ["error: --steps 0 is outside the allowed range 1–150",
                         "error: --repeats 0: give 1 to 100 timed runs (each renders every work size and variant "
                         "once more; 3 is usual)"]


@pytest.mark.parametrize("deadline", ["0", "-5", "nan"])
def test_bench_refuses_a_deadline_that_is_not_a_positive_number_of_seconds(capsys, no_work, deadline):
    assert main(["bench", "--tiny", "--device", "cpu", "--deadline-s", deadline]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --deadline-s {float(deadline):g}: must be a positive number of seconds (or left out: no limit)"]


def test_convert_checks_source_destination_and_values_first(tmp_path, capsys, no_work):
    (tmp_path / "file").write_text("")
    assert main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "file" / "out"), "--dtype", "float8",
                 "--frames", "65"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"error: source {tmp_path / 'nowhere'}: model source") and len(lines) == 4
    assert lines[1:] == [f"error: destination {tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is a file, not a "
                         "folder; name a folder to write into",
                         "error: --dtype float8: not a dtype t2v knows; use one of float32, fp32, float16, fp16, "
                         "bfloat16, bf16", "error: --frames 65 is outside the allowed range 1–64"]


@pytest.mark.parametrize(("args", "says"), [
    (["generate", "a cat", "--stpes", "10"], "unrecognized option: --stpes: did you mean --steps? (see --help)"),
    (["generate", "a cat", "--stpes=10", "--sed", "3"],
     "unrecognized options: --stpes: did you mean --steps?; --sed: did you mean --seed? (see --help)"),
    (["generate", "a cat", "--dtyp", "float32"], "unrecognized option: --dtyp: did you mean --dtype? (see --help)"),
    (["bench", "--config", "standard"], "unrecognized option: --config: did you mean --configs? (see --help)"),
    (["generate", "a cat", "--configs", "standard"], "unrecognized option: --configs: no such option (see --help)"),
    (["generate", "a", "cat", "on", "a", "rock"],
     'unrecognized arguments: cat on a rock; put a prompt of several words in quotes: "a cat on a rock"'),
    (["generate", "--", "-cat", "--steps", "2"],  # was "--steps: did you mean --steps?"
     "unrecognized option: --steps: after --, no option is read; put it before the -- (see --help)"),
    (["generate", "a", "--steps", "2", "--", "b"],  # was "--: no such option"
     'unrecognized arguments: b; put a prompt of several words in quotes: "a b"'),
    (["bench", "--bogus"], "unrecognized option: --bogus: no such option (see --help)"),  # was "did you mean --out?"
    (["generate", "a cat", "--steps", "20", "--frames", "8", "--steps=50"],  # argparse kept the last without a word
     "--steps is given twice (--steps 20, then --steps 50); give it once, with the value you mean"),
    (["generate", "--prompt", "a cat", "--prompt", "a dog"],
     "--prompt is given twice (--prompt a cat, then --prompt a dog); give it once, with the value you mean"),
    (["generate", "a cat", "-o", "a.mp4", "--output", "b.mp4"],
     "--output is given twice (-o a.mp4, then --output b.mp4); give it once, with the value you mean"),
    (["generate", "a cat", "-o", ""], "argument -o/--output: is empty: name a path"),
    (["convert", "tiny-random", " "], "argument destination: is empty: name a path"),
])
def test_a_misspelt_abbreviated_or_stray_argument_is_one_line_naming_what_was_meant(capsys, no_work, args, says):
    assert refused(args, capsys) == [f"error: {says}"]


def test_an_option_repeated_with_its_own_value_or_a_flag_repeated_is_harmless(capsys, no_work):
    from t2v.cli_parser import build_parser

    parsed = build_parser().parse_args(["generate", "a cat", "--steps", "20", "--overwrite", "--steps=20",
                                        "--overwrite"])
    assert parsed.steps == 20 and parsed.overwrite
    parsed = build_parser().parse_args(["bench", "--configs", "standard", "--configs", "batch2"])
    assert parsed.configs == ["batch2"]  # a list option: its last list, as argparse gives it


def test_convert_refuses_to_write_the_export_over_its_source(tmp_path, capsys):
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    capsys.readouterr()
    with_dots = tmp_path / "export" / ".." / "export"
    assert main(["convert", str(tmp_path / "export"), str(with_dots)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: destination {with_dots}: is the source; name another folder for the export"]


def test_convert_replaces_an_earlier_export_only_when_asked(tmp_path, capsys):
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    (tmp_path / "export" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 2
    assert capsys.readouterr().err == (
        f"error: destination {tmp_path / 'export'}: holds unet.safetensors, vae.safetensors, text_encoder.safetensors, "
        "t2v_model.json already; pass --overwrite to replace them, or name a new or empty folder\n")
    assert main(["convert", "tiny-random", str(tmp_path / "export"), "--overwrite"]) == 0
    assert (tmp_path / "export" / "notes.txt").read_text() == "mine"


def test_argparse_errors_are_one_line_with_exit_2(capsys):
    assert main(["generate", "a cat", "--steps", "many"]) == 2
    assert capsys.readouterr().err == (
        "error: argument --steps: 'many' is not a whole number (digits 0-9 only); write one from 1 to 150\n")


@pytest.mark.parametrize("umask", [0o022, 0o077])  # 077: was a folder only its owner could open, files 0644 in it
def test_convert_writes_an_export_everyone_may_read_whatever_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    finally:
        os.umask(previous)
    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "export").iterdir()}
    assert modes == dict.fromkeys(["t2v_model.json", "unet.safetensors", "vae.safetensors",
                                   "text_encoder.safetensors"], 0o644)
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o755


def test_an_unreadable_export_file_is_permission_denied_naming_the_file_and_user(tmp_path):
    prefix = file_modes_apply()
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    locked = tmp_path / "export" / "vae.safetensors"
    locked.chmod(0)
    result = run_cli("generate", "a cat", "--model", str(tmp_path / "export"), "-o", str(tmp_path / "x.mp4"),
                     prefix=prefix)
    assert result.returncode == 2 and not (tmp_path / "x.mp4").exists()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --model {tmp_path / 'export'}: {locked}: permission denied for user {current_user()}; "
                      "make it readable to that user (e.g. chmod a+r, or a+rx for a folder) or run as a user who may "
                      "read it"]  # found before the model loads
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


@pytest.fixture
def hub(monkeypatch):
    """The Hugging Face Hub as this test says it is: reachable (the default) or not (`hub.unreachable`), with
    snapshot_download replaced by `hub.snapshot` (default: fails the test)."""
    import huggingface_hub

    class Hub:
        unreachable: Exception | None = None

        @staticmethod
        def snapshot(**kwargs):
            raise AssertionError("snapshot_download was called")

    def repo_info(self, repo_id, **kwargs):
        if Hub.unreachable is not None:
            raise Hub.unreachable
        return object()

    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", repo_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kwargs: Hub.snapshot(**kwargs))
    return Hub


def test_a_download_error_of_several_lines_is_told_in_one(tmp_path, capsys, hub):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(**kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub.\n"
                                      "Check your connection.")

    hub.snapshot = offline
    assert main(["download", str(tmp_path / "weights")]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "locate the files on the Hub. Check your connection.)" in line


def test_a_download_that_hands_back_a_folder_without_the_model_fails(tmp_path, capsys, hub):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "readme.txt").write_text("notes")
    hub.snapshot = lambda repo_id, local_dir: str(local_dir)  # a repo of other files
    assert main(["download", str(folder)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: could not download ") and "WeightsError" in line and "by hand" in line


def test_generate_with_a_lora_style_at_a_scale_changes_the_video(tmp_path, capsys):
    from safetensors.torch import save_file

    from t2v.config import tiny_config
    from tests.t2v.lora_files import random_lora

    save_file(random_lora(tiny_config(), scale=0.3), tmp_path / "style.safetensors")
    videos = {}
    for name, extra in (("plain", []), ("style", ["--lora", f"{tmp_path / 'style.safetensors'}:0.7"])):
        out = tmp_path / f"{name}.mp4"
        assert main(["generate", "a cat", "-o", str(out), "--steps", "1", "--seed", "3", *extra]) == 0
        with av.open(str(out)) as container:
            videos[name] = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert any((a != b).any() for a, b in zip(videos["plain"], videos["style"], strict=True))


@pytest.mark.parametrize(("value", "says"), [
    ("{tmp}/missing.safetensors:0.5", "{tmp}/missing.safetensors is missing; name a LoRA .safetensors file, or a "
                                      "folder holding pytorch_lora_weights.safetensors"),
    ("{tmp}", "{tmp} holds neither pytorch_lora_weights.safetensors nor pytorch_lora_weights.bin"),
    ("{tmp}/model.safetensors", "{tmp}/model.safetensors holds no LoRA weights (no key names lora); is it a model "
                                "file?"),
    ("{tmp}/junk.safetensors", "{tmp}/junk.safetensors is not a readable safetensors file"),
    ("{tmp}/model.safetensors:inf", "the scale inf is not a finite number"),
    ("{tmp}/model.safetensors:1e30", "the scale 1e+30 is out of range; a style's scale is above 0 and at most 2 "
                                     "(1: as trained)"),  # it overflowed into a black video
    ("{tmp}/model.safetensors:0", "the scale 0 is out of range; a style's scale is above 0 and at most 2"),
    ("{tmp}/model.safetensors:-1", "the scale -1 is out of range; a style's scale is above 0 and at most 2"),
    ("{tmp}/model.safetensors:strong", "the scale 'strong' is not a number; write PATH or PATH:SCALE, e.g. "
                                       "{tmp}/model.safetensors:0.8"),
    ("{tmp}/notes.bin", "{tmp}/notes.bin is not a torch checkpoint: it is text (\"print('a .bin that is a script"),
    ("{tmp}/list.bin", "{tmp}/list.bin holds a list, not a state dict of LoRA tensors"),
    ("{tmp}/model.bin", "{tmp}/model.bin holds no LoRA weights (no key names lora); is it a model file?"),
])
def test_a_lora_file_that_cannot_be_used_is_one_line_before_the_model_loads(tmp_path, capsys, no_work, value, says):
    import torch
    from safetensors.torch import save_file

    save_file({"conv_in.weight": torch.zeros(1)}, tmp_path / "model.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    (tmp_path / "notes.bin").write_text("print('a .bin that is a script, not weights')\n")
    torch.save([torch.zeros(1)], tmp_path / "list.bin")
    torch.save({"conv_in.weight": torch.zeros(1)}, tmp_path / "model.bin")
    value, says = value.format(tmp=tmp_path), says.format(tmp=tmp_path)
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--lora", value]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --lora {value}: ") and says in line


def test_a_lora_for_another_model_is_one_line_after_the_model_loads(tmp_path, capsys):
    from safetensors.torch import save_file

    from t2v.config import tiny_config
    from tests.t2v.lora_files import random_lora

    state = random_lora(tiny_config())
    state["unet.conv_in.lora_A.weight"] = state["unet.conv_in.lora_A.weight"][:, :3].contiguous()  # 3 channels, not 4
    save_file(state, tmp_path / "other.safetensors")
    lora = str(tmp_path / "other.safetensors")
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--lora", lora]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "does not fit the model tiny-random: layers whose shapes do not fit their weight: 1 (unet.conv_in: " in line


def test_an_existing_output_is_kept_unless_overwrite_and_a_link_is_replaced_not_written_through(tmp_path, capsys):
    kept = tmp_path / "keep.mp4"
    kept.write_text("precious")
    assert main(["generate", "a cat", "-o", str(kept), "--steps", "1"]) == 2
    assert capsys.readouterr().err == (f"error: --output {kept}: exists; pass --overwrite to replace it, or name "
                                       "another file\n")
    assert kept.read_text() == "precious"
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    link = tmp_path / "link.mp4"
    link.symlink_to(target)
    assert main(["generate", "a cat", "-o", str(link), "--steps", "1"]) == 2  # a link is refused like a file
    assert main(["generate", "a cat", "-o", str(link), "--steps", "1", "--overwrite"]) == 0
    assert target.read_text() == "mine" and not link.is_symlink() and link.read_bytes()[4:8] == b"ftyp"
    assert main(["generate", "a cat", "-o", str(kept), "--steps", "1", "--overwrite"]) == 0
    assert kept.read_bytes()[4:8] == b"ftyp" and not list(tmp_path.glob(".*.part"))


def test_without_output_each_run_writes_a_new_file_beside_the_last(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(3):
        assert main(["generate", "a cat", "--steps", "1", "-v"]) == 0  # -v after the command is taken too
    assert sorted(path.name for path in tmp_path.iterdir()) == ["video-2.mp4", "video-3.mp4", "video.mp4"]
    assert "wrote video-3.mp4 " in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "line"), [
    (["--sampler", ""], "error: --sampler '' is not one of ddim, dpmpp-2m"),
    (["--device", ""], "error: --device '': not a device name; use cpu, cuda or cuda:N"),
    (["--device", "cpu:5"], "error: --device cpu:5: the CPU has no numbered devices; use cpu"),
    (["--model", ""], "error: --model is empty: name a model folder, or tiny-random"),
    (["--lora", " "], "error: --lora is empty: name a LoRA .safetensors file, or leave --lora out"),
])
def test_empty_and_impossible_values_are_shown_as_such(tmp_path, capsys, argv, line):
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), *argv]) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_version_and_a_repo_that_is_no_repo_id(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("python -m t2v ")
    assert main(["download", "weights", "--repo", "not a repo"]) == 2
    assert capsys.readouterr().err == (
        "error: argument --repo: 'not a repo' is not a Hugging Face repo id; write it as owner/name in letters, "
        "digits, - _ . (none of - . at either end of a part, no -- or .., not ending in .git), e.g. "
        "ali-vilab/modelscope-damo-text-to-video-synthesis\n")


def test_a_prompt_that_starts_with_a_dash_is_shown_how_to_give_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "-cat", "-o", str(tmp_path / "x.mp4")])
    said = capsys.readouterr().err
    assert exit_.value.code == 2 and said == ("error: unrecognized option: -cat: no such option (a prompt that starts "
                                              "with '-' is given as --prompt=\"-cat\") (see --help)\n")
    assert main(["generate", "--prompt=-cat", "-o", str(tmp_path / "x.mp4"), "--steps", "1"]) == 0


def official_files(folder: Path) -> Path:
    """A folder holding the official repo's four files (a configuration that reads; weights whole torch archives of
    one small tensor each)."""
    folder.mkdir()
    (folder / "configuration.json").write_text('{"model": {"model_cfg": {}, "model_args": {}}}')
    for name in ("text2video_pytorch_model.pth", "VQGAN_autoencoder.pth", "open_clip_pytorch_model.bin"):
        torch.save({"weight": torch.zeros(2)}, folder / name)
    return folder


@pytest.mark.parametrize("cause", ["offline mode", "no network"])
def test_download_of_the_official_model_into_an_export_is_refused_without_asking_the_hub(tmp_path, capsys, hub, cause):
    # was: with the Hub out of reach, "could not download ...: copy configuration.json, ... into weights by hand",
    # where the export's manifest, read first, would have hidden them; the official repo's layout is known offline
    from huggingface_hub.utils import OfflineModeIsEnabled

    assert main(["convert", "tiny-random", str(tmp_path / "weights")]) == 0
    before = {path.name: path.read_bytes() for path in (tmp_path / "weights").iterdir()}
    capsys.readouterr()
    hub.unreachable = (OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/models/…: offline mode is "
                                            "enabled") if cause == "offline mode" else
                       ConnectionError("[Errno -2] Name or service not known"))
    assert main(["download", str(tmp_path / "weights")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"error: directory {tmp_path / 'weights'}: holds a `python -m t2v convert` export (t2v_model.json), which a "
        "load reads first, and ali-vilab/modelscope-damo-text-to-video-synthesis is a ModelScope model "
        "(configuration.json): that would be saved beside it and never loaded; download into a new or empty folder"]
    assert {path.name: path.read_bytes() for path in (tmp_path / "weights").iterdir()} == before


def test_download_with_the_hub_out_of_reach_into_the_official_files_says_they_are_already_there(
        tmp_path, capsys, hub):
    folder = official_files(tmp_path / "weights")
    hub.unreachable = ConnectionError("[Errno -2] Name or service not known")
    assert main(["download", str(folder)]) == 0
    assert capsys.readouterr().out == (
        f"already there: {folder} holds configuration.json, text2video_pytorch_model.pth, VQGAN_autoencoder.pth, "
        "open_clip_pytorch_model.bin (the files ali-vilab/modelscope-damo-text-to-video-synthesis publishes), each "
        "whole; nothing was downloaded: the Hugging Face Hub could not be reached to compare them (ConnectionError)\n")
    # another repo's files cannot be known without the Hub: no claim about them
    assert main(["download", str(folder), "--repo", "cerspense/zeroscope_v2_576w"]) == 1
    assert capsys.readouterr().err.startswith("error: could not download cerspense/zeroscope_v2_576w from the ")
    # nor about a file a broken download cut short
    clip = folder / "open_clip_pytorch_model.bin"
    clip.write_bytes(clip.read_bytes()[:100])
    assert main(["download", str(folder)]) == 1
    assert capsys.readouterr().err.startswith("error: could not download ali-vilab/modelscope-damo-text-to-video-")


def test_a_download_says_whether_it_fetched_anything(tmp_path, capsys, hub):
    folder = official_files(tmp_path / "weights")
    hub.snapshot = lambda repo_id, local_dir: str(local_dir)  # every file as the Hub has it already
    assert main(["download", str(folder)]) == 0
    assert capsys.readouterr().out == (f"already there: {folder} holds ali-vilab/modelscope-damo-text-to-video-"
                                       "synthesis's files as the Hub has them; nothing to download\n")

    def fetch(repo_id, local_dir):
        (local_dir / "text2video_pytorch_model.pth").write_bytes(b"newer weights")
        return str(local_dir)

    hub.snapshot = fetch
    assert main(["download", str(folder)]) == 0
    assert capsys.readouterr().out == f"downloaded ali-vilab/modelscope-damo-text-to-video-synthesis to {folder}\n"


@pytest.mark.parametrize("given", [True, False])
def test_a_name_taken_while_rendering_is_kept_and_the_video_takes_the_next_free_one(tmp_path, capsys, monkeypatch,
                                                                                     given):
    monkeypatch.chdir(tmp_path)
    name = "x.mp4" if given else "video.mp4"
    encode = t2v.cli.encode_mp4

    def another_run_writes_first(frames, fps):  # between the checks and the write
        (tmp_path / name).write_bytes(b"another run's video")
        return encode(frames, fps)

    monkeypatch.setattr(t2v.cli, "encode_mp4", another_run_writes_first)
    assert main(["generate", "a cat", "--steps", "1", *(["-o", name] if given else [])]) == 0
    next_name = name.replace(".mp4", "-2.mp4")
    assert f"{name} appeared while rendering (another run?); wrote {next_name} (" in capsys.readouterr().out
    assert (tmp_path / name).read_bytes() == b"another run's video"
    assert (tmp_path / next_name).read_bytes()[4:8] == b"ftyp" and len(list(tmp_path.iterdir())) == 2


def test_a_full_disk_names_the_video_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    full_disk(monkeypatch)
    out = tmp_path / "x.mp4"
    assert main(["generate", "a cat", "-o", str(out), "--steps", "1"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]  # tqdm's bar aside
    assert errors == [f"error: could not write {out} (No space left on device); nothing was written there"]
    assert not list(tmp_path.iterdir())


def test_a_render_that_is_not_finite_is_an_error_and_writes_no_video(tmp_path, capsys, monkeypatch):
    from t2v.driver import PipelineBase

    monkeypatch.setattr(PipelineBase, "denoise", lambda self, x, *args: torch.full_like(x, float("nan")))
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--steps", "1"]) == 1
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")] == [
        "error: the render produced non-finite values (NaN or inf) in its latents, which would make a black video; "
        "likely causes: a LoRA style at too large a scale, or float16 overflow (float32 or bfloat16 avoids it)"]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("model", "says"), [
    ("weights/modelscope", "model source 'weights/modelscope' ({tmp}/weights/modelscope) is neither 'tiny-random' nor "
                           "an existing directory; download the official model into it first with `python -m t2v "
                           "download weights/modelscope` (for another Hugging Face repo, add --repo OWNER/NAME)"),
    ("ali-vilab/text-to-video-ms-1.7b",
     "model source 'ali-vilab/text-to-video-ms-1.7b' is neither 'tiny-random' nor an existing directory: it is a "
     "Hugging Face repo id, and t2v loads folders; download it first with `python -m t2v download "
     "weights/text-to-video-ms-1.7b --repo ali-vilab/text-to-video-ms-1.7b`, then load weights/text-to-video-ms-1.7b"),
])
def test_a_model_not_downloaded_yet_is_answered_with_the_download_command(tmp_path, capsys, monkeypatch, no_work,
                                                                          model, says):
    monkeypatch.chdir(tmp_path)  # the README's commands, before its download step
    assert main(["generate", "a cat", "--model", model]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --model {model}: {says.format(tmp=tmp_path)}"]


def test_a_model_file_or_a_truncated_checkpoint_is_one_line_before_the_model_loads(tmp_path, capsys, no_work):
    folder = modelscope_folder(tmp_path / "model")
    assert main(["generate", "a cat", "--model", "/etc/passwd", "-o", str(tmp_path / "x.mp4")]) == 2
    assert capsys.readouterr().err.startswith("error: --model /etc/passwd is a file; name the folder that holds the "
                                              "model's files (")
    (folder / UNET).write_bytes((folder / UNET).read_bytes()[:1000])
    assert main(["generate", "a cat", "--model", str(folder), "-o", str(tmp_path / "x.mp4")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --model {folder}: {folder / UNET} is truncated: 1,000 bytes, and the end of its ")
    assert line.endswith("delete it and download it again (`python -m t2v download "
                         f"{folder}` fetches what is missing)")


def test_output_under_a_file_overwrite_without_output_and_a_name_that_is_not_utf8_are_each_one_line(
        tmp_path, capsys, no_work):
    (tmp_path / "panda.mp4").write_bytes(b"a video")
    assert main(["generate", "a cat", "-o", str(tmp_path / "panda.mp4" / "x.mp4")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --output {tmp_path / 'panda.mp4' / 'x.mp4'}: {tmp_path / 'panda.mp4'} is a file, not a folder; name "
        "a file in a folder that exists"]
    assert main(["generate", "a cat", "--overwrite"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --overwrite: replaces the file named with -o/--output, and none is named (each run without -o writes "
        "a new video.mp4, video-2.mp4, …); name the file, or leave --overwrite out"]
    assert main(["generate", "a cat", "-o", os.fsdecode(b"caf\xe9.mp4")]) == 2  # argv's bytes, as Python hands them
    assert capsys.readouterr().err.splitlines() == [
        "error: argument -o/--output: b'caf\\xe9.mp4' is not UTF-8 text (byte 0xe9); name it in UTF-8, as t2v reads "
        "and prints names"]
    assert (tmp_path / "panda.mp4").read_bytes() == b"a video"


def test_the_help_gives_each_value_its_range():
    generate = t2v.cli.build_parser()._commands()["generate"]
    assert "frames per second of the MP4, 1–60 (default 8)" in " ".join(generate.format_help().split())


@pytest.mark.parametrize("fails", [1, 2])
def test_convert_on_a_full_disk_is_one_line_and_leaves_no_half_export(tmp_path, capsys, monkeypatch, fails):
    from safetensors import SafetensorError

    import t2v.weights.files

    save = t2v.weights.files.save_file
    calls = []

    def full(state, path):
        calls.append(path)
        if len(calls) == fails:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        save(state, path)

    earlier = tmp_path / "earlier"
    assert main(["convert", "tiny-random", str(earlier)]) == 0
    (earlier / "notes.txt").write_text("mine")
    kept = {path.name: path.read_bytes() for path in earlier.iterdir()}
    monkeypatch.setattr(t2v.weights.files, "save_file", full)
    for destination, extra in ((tmp_path / "new" / "export", []), (earlier, ["--overwrite", "--frames", "2"])):
        calls.clear()
        assert main(["convert", "tiny-random", str(destination), *extra]) == 1
        assert capsys.readouterr().err.splitlines() == [
            f"error: could not write the export to {destination} (SafetensorError: Error while serializing: I/O "
            "error: No space left on device (os error 28)); what was written of it is removed"]
    # no .part, and no empty "new": the folder made for the export goes with it
    assert sorted(path.name for path in tmp_path.rglob("*")) == sorted(["earlier", *kept])
    assert {path.name: path.read_bytes() for path in earlier.iterdir()} == kept


def test_bench_without_diffusers_or_over_earlier_results_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import importlib.util

    from t2v.bench import main as bench_main

    monkeypatch.setattr(bench_main, "run", lambda args: 0)  # the benchmark itself: not this test's
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else find_spec(name))
    (tmp_path / "bench.json").write_text("{}")
    assert main(["bench", "--tiny", "--device", "cpu", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: the diffusers runs need diffusers, not installed here; install the bench extra (pip install -e "
        "'.[bench]'), or pass --no-diffusers to time our pipeline alone",
        f"error: --out {tmp_path}: holds bench.json already; pass --overwrite to replace them, or name a new or empty "
        "folder"]
    assert main(["bench", "--tiny", "--device", "cpu", "--out", str(tmp_path), "--no-diffusers", "--overwrite"]) == 0
    assert main(["bench", "--tiny", "--device", "cpu", "--cold-start-only"]) == 0  # needs no diffusers
    assert (tmp_path / "bench.json").read_text() == "{}"
