"""What `python -m t2v` finds before any work that it once found only after loading the weights (or not at all): a
damaged fp16 file, a bad t2v_defaults.json, a checkpoint whose keys do not fit; and one line each for numbers,
repo ids, conflicting bench options, a destination named like the preset, an out-of-memory render, Ctrl-C after
the video is written."""

import json
import runpy
import shutil
import signal
import sys

import pytest
from safetensors.torch import load_file, save_file

import t2v.cli
from t2v import preflight
from t2v.cli import main
from t2v.weights.files import where_from
from tests.t2v.helpers import modelscope_folder, refused


@pytest.fixture
def diffusers_copy(diffusers_256, tmp_path):
    """A diffusers folder (fp32 and *.fp16.safetensors files) of this test's own, to damage."""
    return shutil.copytree(diffusers_256[1], tmp_path / "model")


def test_a_damaged_fp16_file_is_found_before_a_half_precision_load(diffusers_copy, tmp_path, capsys, no_work):
    half = diffusers_copy / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    half.write_bytes(half.read_bytes()[:-10])  # was found only after the fp32 files' check passed and the load began
    said = preflight.model_source("--model", str(diffusers_copy), half=True)
    assert said.startswith(f"--model {diffusers_copy}: {half} is truncated") and "--repo OWNER/NAME" in said
    assert preflight.model_source("--model", str(diffusers_copy), half=False) is None  # fp32 reads no fp16 file
    lines = refused(["convert", str(diffusers_copy), str(tmp_path / "export")], capsys)  # convert: float16
    assert len(lines) == 1 and f"{half} is truncated" in lines[0]
    lines = refused(["generate", "a cat", "--model", str(diffusers_copy), "--dtype", "fp16", "-o",
                     str(tmp_path / "x.mp4")], capsys)
    assert len(lines) == 1 and f"{half} is truncated" in lines[0]


def test_a_load_that_fails_after_the_checks_names_the_option_and_the_diffusers_advice(diffusers_copy, tmp_path,
                                                                                        monkeypatch, capsys):
    half = diffusers_copy / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    half.write_bytes(half.read_bytes()[:-10])
    monkeypatch.setattr(preflight, "model_source", lambda *args: None)  # damaged after the checks passed
    assert main(["generate", "a cat", "--model", str(diffusers_copy), "--dtype", "fp16", "-o",
                 str(tmp_path / "x.mp4")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --model {diffusers_copy}: {half} could not be read")
    assert f"python -m t2v download {diffusers_copy} --repo OWNER/NAME" in line and "ali-vilab" not in line


@pytest.mark.parametrize(("text", "says"), [
    ("{", "is not valid JSON"),
    ('{"colour": "red"}', "unknown keys ['colour']; allowed are width, height, frames, name"),
    ('{"width": 100}', "width=100 must be a multiple of 64"),
])
def test_a_bad_t2v_defaults_json_is_found_before_the_weights_load(tmp_path, capsys, no_work, text, says):
    folder = modelscope_folder(tmp_path / "model")
    (folder / "t2v_defaults.json").write_text(text)
    lines = refused(["generate", "a cat", "--model", str(folder), "-o", str(tmp_path / "x.mp4")], capsys)
    assert len(lines) == 1 and lines[0].startswith(f"error: --model {folder}: {folder / 't2v_defaults.json'}")
    assert says in lines[0]


@pytest.fixture
def export_dir(tmp_path):
    """A tiny-random export to tamper with."""
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    return tmp_path / "export"


def edit_safetensors(path, change) -> None:
    state = load_file(path)
    change(state)
    save_file(state, path)


def test_an_export_missing_a_key_is_refused_from_its_header_with_the_convert_advice(export_dir, tmp_path, capsys,
                                                                                      no_work):
    unet = export_dir / "unet.safetensors"
    edit_safetensors(unet, lambda state: state.pop("out.2.bias"))
    capsys.readouterr()
    lines = refused(["generate", "a cat", "--model", str(export_dir), "-o", str(tmp_path / "x.mp4")], capsys)
    assert lines == [f"error: --model {export_dir}: {unet} does not match the model: 1 missing keys (out.2.bias). Is "
                     "it the right file for this model? re-run `python -m t2v convert` to write a complete export"]


def test_a_diffusers_file_with_a_wrong_shape_or_an_extra_key_is_refused_before_loading(diffusers_copy, capsys):
    vae = diffusers_copy / "vae" / "diffusion_pytorch_model.safetensors"

    def wrong(state):
        state["decoder.conv_out.bias"] = state["decoder.conv_out.bias"][:2].clone()
        state["decoder.extra"] = state["decoder.conv_out.bias"].clone()

    edit_safetensors(vae, wrong)
    said = preflight.model_source("--model", str(diffusers_copy), half=False)
    assert said.startswith(f"--model {diffusers_copy}: {vae} does not fit its config") and "decoder.extra" in said
    edit_safetensors(vae, lambda state: state.pop("decoder.extra"))
    said = preflight.model_source("--model", str(diffusers_copy), half=False)
    assert said.startswith(f"--model {diffusers_copy}: {vae} does not match the model: 1 wrong shapes")
    assert "--repo OWNER/NAME" in said and "\n" not in said


def test_a_cpu_out_of_memory_is_one_line_naming_the_size_and_what_to_lower(tmp_path, monkeypatch, capsys):
    from t2v.driver import PipelineBase

    def too_big(self, x, *args):  # what torch's CPU allocator raises: a plain RuntimeError
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 21474836480 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(PipelineBase, "denoise", too_big)
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--steps", "1", "--frames", "3"]) == 1
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")] == [
        "error: the device ran out of memory rendering 3 frames 64×64 (tried to allocate 21.5 GB more); ask for "
        "fewer --frames or a smaller --width/--height"]
    assert not list(tmp_path.iterdir())


def test_ctrl_c_after_the_video_is_written_is_a_finished_run(tmp_path, monkeypatch, capsys):
    from t2v.request import GenerationResult

    def ctrl_c(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(GenerationResult, "notes", property(ctrl_c))  # read after the MP4 is written
    out = tmp_path / "x.mp4"
    assert main(["generate", "a cat", "-o", str(out), "--steps", "1"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == f"wrote {out} (interrupted after it was written whole)"
    assert out.stat().st_size > 0


def test_python_m_t2v_ignores_ctrl_c_once_the_command_has_returned(monkeypatch):
    # Ctrl-C in the second of shutdown after "wrote x.mp4" killed the run by signal, or printed "Exception ignored in
    # tqdm.__del__ … KeyboardInterrupt"
    monkeypatch.setattr(t2v.cli, "main", lambda: 0)
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_:
            runpy.run_module("t2v", None, "__main__")
        assert exit_.value.code == 0 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.modules.pop("t2v.__main__", None)


def test_convert_into_a_folder_named_like_the_preset_is_refused(tmp_path, monkeypatch, capsys, no_work):
    monkeypatch.chdir(tmp_path)  # `--model tiny-random` would load the preset, never that folder
    line = ("error: destination tiny-random: an export of that name could not be loaded, since --model tiny-random is "
            "the random-weight preset; name another folder, e.g. weights/tiny-random")
    assert refused(["convert", "tiny-random", "tiny-random"], capsys) == [line]
    assert not list(tmp_path.iterdir())
    (tmp_path / "tiny-random").mkdir()  # was "destination tiny-random: is the source"
    assert refused(["convert", "tiny-random", "tiny-random", "--overwrite"], capsys) == [line]


@pytest.mark.parametrize("repo", ["../..", "a--b/c", "a/b.git", "-a/b", "a/b.", "a/" + "x" * 97, "a/b/c"])
def test_a_repo_id_the_hub_would_refuse_is_refused_naming_repo(tmp_path, capsys, no_work, repo):
    [line] = refused(["download", str(tmp_path / "w"), f"--repo={repo}"], capsys)
    assert line.startswith(f"error: argument --repo: {repo!r} is not a Hugging Face repo id; write it as owner/name")


@pytest.mark.parametrize(("argv", "line"), [
    (["convert", "tiny-random", "out", "--width", "1.5"],
     "argument --width: '1.5' is not a whole number (digits 0-9 only); write one from 64 to 1024"),
    (["bench", "--tiny", "--device", "cpu", "--steps", "abc"],
     "argument --steps: 'abc' is not a whole number (digits 0-9 only); write one from 1 to 150"),
    (["bench", "--tiny", "--device", "cpu", "--repeats", "1.5"],
     "argument --repeats: '1.5' is not a whole number (digits 0-9 only); write one from 1 to 100"),
    (["generate", "a cat", "--steps", "1_0"],
     "argument --steps: '1_0' is not a whole number (digits 0-9 only); write one from 1 to 150"),
    (["generate", "a cat", "--steps", "\u0662"],
     "argument --steps: '\u0662' is not a whole number (digits 0-9 only); write one from 1 to 150"),
    (["generate", "a cat", "--guidance", "0"], "--guidance 0 is outside the allowed range 1.0–30.0"),
])
def test_every_command_reads_numbers_alike_and_names_the_range(tmp_path, monkeypatch, capsys, no_work, argv, line):
    monkeypatch.chdir(tmp_path)
    assert refused(argv, capsys) == [f"error: {line}"]


@pytest.mark.parametrize(("value", "line"), [
    ("x.mp4.", "--output x.mp4.: t2v writes H.264 MP4 videos; name a .mp4 file, e.g. x.mp4"),
    ("x.mp4 ", "--output 'x.mp4 ': t2v writes H.264 MP4 videos; name a .mp4 file, e.g. x.mp4"),
])
def test_an_output_name_is_shown_as_typed_and_answered_with_a_real_name(tmp_path, monkeypatch, capsys, no_work,
                                                                         value, line):
    monkeypatch.chdir(tmp_path)  # was "e.g. x.mp4..mp4", and a trailing space that did not show
    assert refused(["generate", "a cat", "-o", value], capsys) == [f"error: {line}"]


def test_a_model_name_that_is_not_utf8_is_shown_as_its_bytes_without_an_ellipsis():
    assert preflight.model_source("--model", "\udcff") == (
        "--model b'\\xff' is not UTF-8 text (byte 0xff); name it in UTF-8, as t2v reads and prints names")


@pytest.mark.parametrize(("options", "line"), [
    (["--diffusers-compile", "on"],
     "--diffusers-compile on and --no-diffusers: the diffusers runs to compile are left out; give one of them"),
    (["--cold-start-only", "--configs", "standard", "--kernels"],
     "--cold-start-only measures the cold start alone, so --configs and --kernels would be ignored; leave them out, "
     "or leave out --cold-start-only"),
    (["--cold-start-only", "--variants", "bf16"],
     "--cold-start-only measures the cold start alone, so --variants would be ignored; leave them out, or leave out "
     "--cold-start-only"),
])
def test_bench_options_that_contradict_each_other_are_refused(monkeypatch, capsys, options, line):
    from t2v.bench import main as bench

    monkeypatch.setattr(bench, "run", lambda args: pytest.fail("the benchmark ran, one option silently ignored"))
    assert refused(["bench", "--tiny", "--device", "cpu", "--no-diffusers", *options], capsys) == [f"error: {line}"]


def test_bench_overwrite_cut_short_leaves_no_results_of_the_earlier_run(tmp_path, monkeypatch, capsys):
    from t2v.bench import sections

    out = tmp_path / "out"
    out.mkdir()
    (out / "bench.md").write_text("the earlier run's table")
    (out / "bench.json").write_text(json.dumps({"rows": ["earlier"]}))

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sections, "run_all", ctrl_c)
    assert main(["bench", "--tiny", "--device", "cpu", "--no-diffusers", "--backend", "aot_eager", "--out", str(out),
                 "--overwrite"]) == 130
    assert not (out / "bench.md").exists()  # was the old table beside the new run's bench.json
    assert "earlier" not in (out / "bench.json").read_text()


def test_a_t2v_defaults_json_that_is_not_utf8_is_one_line(tmp_path, capsys, no_work):
    folder = modelscope_folder(tmp_path / "model")
    (folder / "t2v_defaults.json").write_bytes('{"width": 256}'.encode("utf-16"))  # Notepad's "Unicode"
    lines = refused(["generate", "a cat", "--model", str(folder), "-o", str(tmp_path / "x.mp4")], capsys)
    assert lines == [f"error: --model {folder}: {folder / 't2v_defaults.json'} is not UTF-8 text (byte 0xff at offset "
                     "0); save it as UTF-8 JSON"]


def test_running_out_of_memory_while_loading_is_one_line_and_status_1(tmp_path, monkeypatch, capsys):
    def too_big(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 7000000000 bytes.")

    monkeypatch.setattr(t2v.cli, "load_pipeline", too_big)
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--steps", "1"]) == 1
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")] == [
        "error: --model tiny-random: the machine ran out of memory loading it (tried to allocate 7.0 GB more); free "
        "some memory, or use a machine with more"]


def test_convert_from_a_folder_the_user_may_not_enter_is_one_line(tmp_path, monkeypatch, capsys, no_work):
    from tests.permissions import lock_out

    home = lock_out(monkeypatch, tmp_path / "alice")
    lines = refused(["convert", str(home / "models" / "ms"), str(tmp_path / "out")], capsys)
    assert len(lines) == 1 and lines[0].startswith(f"error: source {home / 'models' / 'ms'}: permission denied")


def test_a_diffusers_attention_weight_that_cannot_join_its_neighbours_is_one_line(diffusers_copy, capsys):
    encoder = next((diffusers_copy / "text_encoder").glob("*.safetensors"))  # q, k and v join into OpenCLIP's in_proj
    key = next(name for name in load_file(encoder) if name.endswith("k_proj.weight"))
    edit_safetensors(encoder, lambda state: state.update({key: state[key][:, :-1].contiguous()}))
    said = preflight.model_source("--model", str(diffusers_copy), half=False)
    assert said.startswith(f"--model {diffusers_copy}: {encoder} does not fit its config") and "\n" not in said


def test_a_modelscope_checkpoint_missing_a_key_is_refused_before_the_load(modelscope_dir, tmp_path, capsys, no_work):
    """The published .pth files are torch pickles: read memory-mapped, their keys are known without their data."""
    import torch

    folder = shutil.copytree(modelscope_dir, tmp_path / "model")
    unet = folder / "text2video_pytorch_model.pth"
    state = torch.load(unet, weights_only=True)
    del state["out.2.bias"]
    torch.save(state, unet)
    lines = refused(["generate", "a cat", "--model", str(folder), "-o", str(tmp_path / "x.mp4")], capsys)
    assert lines == [f"error: --model {folder}: {unet} does not match the model: 1 missing keys (out.2.bias). Is it "
                     f"the right file for this model? {where_from(folder)}"]


def test_a_diffusers_bin_component_of_the_wrong_shape_is_refused_before_the_load(diffusers_copy):
    """A diffusers folder saved with safe_serialization=False holds .bin pickles: checked as its safetensors are."""
    import torch

    vae = diffusers_copy / "vae"
    for half in (False, True):
        name = "diffusion_pytorch_model" + (".fp16" if half else "")
        state = load_file(vae / f"{name}.safetensors")
        state["decoder.conv_out.bias"] = state["decoder.conv_out.bias"][:2].clone()
        torch.save(state, vae / f"{name}.bin")
        (vae / f"{name}.safetensors").unlink()
    said = preflight.model_source("--model", str(diffusers_copy), half=False)
    assert said.startswith(f"--model {diffusers_copy}: {vae / 'diffusion_pytorch_model.bin'} does not match the "
                           "model: 1 wrong shapes (decoder.conv_out.bias: file (2,), model (3,))")


def test_a_value_with_a_newline_or_an_escape_sequence_in_it_is_named_on_one_line(tmp_path, capsys, no_work):
    """An argument can hold any byte but NUL ($'tiny\\nrandom', a pasted ESC): the error line shows it, escaped, and
    stays one line, whatever message names it."""
    lines = refused(["generate", "a cat", "--model", "tiny\nrandom\x1b[2J", "-o", str(tmp_path / "x.mp4")], capsys)
    assert len(lines) == 1 and "\n" not in lines[0] and "\x1b" not in lines[0]
    assert lines[0].startswith("error: --model tiny\\nrandom\\x1b[2J: model source 'tiny\\nrandom\\x1b[2J' ")
    lines = refused(["generate", "a cat", "extra\nline\x1b[31m"], capsys)  # argparse's own refusal too
    assert len(lines) == 1 and "\x1b" not in lines[0] and "extra\\nline\\x1b[31m" in lines[0]


@pytest.mark.parametrize(("wrap", "holds"), [
    (lambda state: {"state_dict": state}, "'state_dict' of type OrderedDict"),  # a training checkpoint's layout
    (lambda state: {**state, "step": 5}, "'step' of type int"),
])
def test_a_checkpoint_holding_more_than_tensors_is_one_line_not_a_traceback(modelscope_dir, tmp_path, wrap, holds):
    import torch

    folder = shutil.copytree(modelscope_dir, tmp_path / "model")
    unet = folder / "text2video_pytorch_model.pth"
    torch.save(wrap(torch.load(unet, weights_only=True)), tmp_path / "unet.pth")
    (tmp_path / "unet.pth").replace(unet)
    said = preflight.model_source("--model", str(folder))
    assert said == (f"--model {folder}: {unet} holds {holds} where a plain tensor was expected (a file saved "
                    f"otherwise than the published one); {where_from(folder)}")


def test_a_modelscope_folder_missing_a_file_is_told_the_download_into_that_folder(modelscope_dir, tmp_path):
    # was: "... (download them with `python -m t2v download DIR`)", the word DIR and not the folder
    folder = shutil.copytree(modelscope_dir, tmp_path / "my model")
    (folder / "VQGAN_autoencoder.pth").unlink()
    said = preflight.model_source("--model", str(folder))
    assert said.startswith(f"--model {folder}: ") and "VQGAN_autoencoder.pth" in said
    assert said.endswith(f"(download them with `python -m t2v download '{folder}'`)")
