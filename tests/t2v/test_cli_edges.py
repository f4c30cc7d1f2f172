"""`python -m t2v …` at its edges, as a stranger types it: values the shell hands over unexpanded or taken for
options, values whose spaces do not show, near-misses of a name, an output named with a folder's trailing slash, no
command at all, and Ctrl-C at any point."""

import runpy
import signal
import sys

import pytest

import t2v.cli
import t2v.preflight
from t2v.cli import main
from tests.t2v.helpers import refused

TILDE = "the ~ is not expanded here (a shell expands it only at the start of a word, not after = or inside quotes)"


@pytest.mark.parametrize(("argv", "line"), [
    (["generate", "a cat", "--output=~/x.mp4"], "error: argument -o/--output: ~/x.mp4: {tilde}; write {home}/x.mp4"),
    (["generate", "a cat", "--model=~/weights/modelscope"],
     "error: --model ~/weights/modelscope: {tilde}; write {home}/weights/modelscope"),
    (["generate", "a cat", "--lora=~/style.safetensors:0.5"],
     "error: --lora ~/style.safetensors:0.5: {tilde}; write {home}/style.safetensors:0.5"),
    (["download", "~/weights"], "error: argument directory: ~/weights: {tilde}; write {home}/weights"),
])
def test_a_home_folder_no_shell_expanded_is_answered_with_the_path_it_stands_for(tmp_path, monkeypatch, capsys,
                                                                                   no_work, argv, line):
    # "the folder ~ does not exist; create it first" had the user make a folder named ~ (which `rm -rf ~` then meets)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    argv = [*argv, "-o", "x.mp4"] if argv[0] == "generate" and "-o" not in " ".join(argv) else argv
    assert refused(argv, capsys) == [line.format(tilde=TILDE, home=tmp_path / "home")]
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize(("option", "value"), [("--guidance", "-inf"), ("--seed", "-1e5"), ("--negative", "-blurry"),
                                               ("--prompt", "-cat")])
def test_a_value_that_starts_with_a_dash_is_named_with_how_to_write_it(tmp_path, capsys, no_work, option, value):
    # was "argument --guidance: expected one argument": the value typed was not named, nor how to pass it
    assert refused(["generate", "-o", str(tmp_path / "x.mp4"), option, value], capsys) == [
        f"error: {option} {value}: a value that starts with '-' is written {option}={value}"]


@pytest.mark.parametrize("argv", [["--guidance"], ["--guidance", "--steps", "3"], ["--guidance", "-v"]])
def test_an_option_left_without_its_value_still_says_so(tmp_path, capsys, no_work, argv):
    assert refused(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), *argv], capsys) == [
        "error: argument --guidance: expected one argument"]


def test_a_negative_value_written_with_equals_reaches_the_range_check(tmp_path, capsys, no_work):
    assert refused(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--guidance=-inf"], capsys) == [
        "error: --guidance -inf is outside the allowed range 1.0–30.0"]


def test_output_to_standard_output_is_refused_as_such(tmp_path, monkeypatch, capsys, no_work):
    monkeypatch.chdir(tmp_path)  # was: "name a .mp4 file, e.g. -.mp4 (or -/video.mp4 in a folder)"
    assert refused(["generate", "a cat", "-o", "-"], capsys) == [
        "error: --output -: t2v writes the video to a file, not to standard output; name a .mp4 file, e.g. video.mp4"]
    assert not list(tmp_path.iterdir())


SLASH = "a trailing slash names a folder, and"


@pytest.mark.parametrize(("value", "line"), [
    ("x.mp4/", f"{SLASH} there is no folder x.mp4; drop the slash to write the video to x.mp4"),
    ("x.mp4/.", f"{SLASH} there is no folder x.mp4; drop the slash to write the video to x.mp4"),
    ("clip/", f"{SLASH} there is no folder clip; name a .mp4 file instead, e.g. clip.mp4, or create the folder first "
              "and name a file in it, e.g. clip/video.mp4"),
    ("old.mp4/", f"{SLASH} old.mp4 is a file, not a folder; to replace that file with the video, drop the slash and "
                 "pass --overwrite, or name another file"),
    ("notes.txt/", f"{SLASH} notes.txt is a file, not a folder; name a .mp4 file instead, e.g. notes.mp4"),
    ("out/", "is a folder; name the file to write in it, e.g. out/video-2.mp4"),  # as `-o out` is answered
    ("out", "is a folder; name the file to write in it, e.g. out/video-2.mp4"),
])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_an_output_named_with_a_trailing_slash_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, no_work,
                                                                          value, line, overwrite):
    # was: -o x.mp4/ wrote the file x.mp4 and -o old.mp4/ --overwrite replaced old.mp4, the slash silently dropped;
    # -o clip/ was answered as "--output clip: …", not the value typed
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old.mp4").write_bytes(b"yesterday's video")
    (tmp_path / "notes.txt").write_text("notes")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "video.mp4").write_bytes(b"an earlier video")
    there = sorted(tmp_path.rglob("*"))
    assert refused(["generate", "a cat", "-o", value, *overwrite], capsys) == [f"error: --output {value}: {line}"]
    assert sorted(tmp_path.rglob("*")) == there and (tmp_path / "old.mp4").read_bytes() == b"yesterday's video"


@pytest.mark.parametrize(("argv", "line"), [
    (["--sampler", " ddim"], "error: --sampler ' ddim' is not one of ddim, dpmpp-2m"),  # was "--sampler  ddim is not…"
    (["--dtype", ""], "error: --dtype '': not a dtype t2v knows; use one of float32, fp32, float16, fp16, bfloat16, "
                      "bf16, fp8"),  # was "--dtype : not a dtype …"
    (["--device", "cpu "], "error: --device 'cpu ': not a device name; use cpu, cuda or cuda:N"),
])
def test_a_value_whose_spaces_would_not_show_is_quoted(tmp_path, capsys, no_work, argv, line):
    assert refused(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), *argv], capsys) == [line]


@pytest.mark.parametrize(("model", "shown"), [("TINY-RANDOM", "TINY-RANDOM"), ("tiny_random", "tiny_random"),
                                              ("tiny-randon", "tiny-randon"), (" tiny-random", "' tiny-random'")])
def test_a_misspelt_tiny_random_is_answered_with_its_name(tmp_path, monkeypatch, capsys, no_work, model, shown):
    monkeypatch.chdir(tmp_path)  # was: "download the official model into it first with `python -m t2v download …`"
    # and " tiny-random" was "there is no folder  tiny-random here": its space did not show
    assert refused(["generate", "a cat", "--model", model], capsys) == [
        f"error: --model {shown}: there is no folder {shown} here; did you mean tiny-random (the random-weight "
        "preset)?"]


def test_no_command_names_the_commands(capsys):
    assert refused([], capsys) == [  # was "the following arguments are required: command"
        "error: no command given; use one of generate, convert, download, bench (python -m t2v COMMAND --help)"]


class CtrlC:
    """tqdm's stand-in, whose second step update is the user's Ctrl-C."""

    def __init__(self, total: int, **kwargs) -> None:
        self.n = 0

    def __enter__(self) -> "CtrlC":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, count: int) -> None:
        self.n += count
        if self.n == 2:
            raise KeyboardInterrupt


@pytest.mark.parametrize("overwrite", [False, True])
def test_ctrl_c_mid_render_writes_nothing_and_keeps_what_was_there(tmp_path, monkeypatch, capsys, overwrite):
    monkeypatch.setattr(t2v.cli, "tqdm", CtrlC)
    out = tmp_path / "x.mp4"
    if overwrite:
        out.write_bytes(b"yesterday's video")
    argv = ["generate", "a cat", "-o", str(out), "--steps", "4", *(["--overwrite"] if overwrite else [])]
    assert main(argv) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "interrupted: nothing was written"
    assert [path.name for path in tmp_path.iterdir()] == (["x.mp4"] if overwrite else [])  # no part file either
    assert not overwrite or out.read_bytes() == b"yesterday's video"


def test_a_gpu_out_of_memory_is_one_line_saying_what_to_ask_for_instead(tmp_path, monkeypatch, capsys):
    import torch

    from t2v.driver import PipelineBase

    def too_big(self, x, *args):  # what a 24 GB GPU says to 64 frames of 1024×1024
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total "
                                          "capacity of 23.65 GiB of which 1.20 GiB is free. Including non-PyTorch "
                                          "memory, this process has 22.40 GiB memory in use.")

    monkeypatch.setattr(PipelineBase, "denoise", too_big)
    out = tmp_path / "x.mp4"  # was: a traceback ending in torch.OutOfMemoryError
    assert main(["generate", "a cat", "-o", str(out), "--steps", "1", "--frames", "3", "--width", "128"]) == 1
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")] == [
        "error: the device ran out of memory rendering 3 frames 128×64 (CUDA out of memory. Tried to allocate "
        "20.00 GiB); ask for fewer --frames or a smaller --width/--height"]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("option", "value", "line"), [
    ("--steps", "1e3", "error: argument --steps: '1e3' is not a whole number (digits 0-9 only); write one from 1 to "
                       "150"),
    ("--seed", "-1e5", "error: argument --seed: '-1e5' is not a whole number (digits 0-9 only); write one from 0 to "
                       "9223372036854775807"),
    ("--width", "64.0", "error: argument --width: '64.0' is not a whole number (digits 0-9 only); write one from 64 to "
                        "1024"),
    ("--guidance", "abc", "error: argument --guidance: 'abc' is not a number; write one from 1.0 to 30.0"),
])
def test_a_number_argparse_cannot_read_is_named_with_the_range_that_is_right(capsys, tmp_path, option, value, line):
    argv = ["generate", "a cat", "--model", "tiny-random", f"{option}={value}", "-o", str(tmp_path / "x.mp4")]
    assert refused(argv, capsys) == [line]  # was "invalid int value: '1e3'"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "lines"), [
    (["generate", "a cat", "--steps", "abc", "--guidance", "99"],  # was the --steps line alone
     ["argument --steps: 'abc' is not a whole number (digits 0-9 only); write one from 1 to 150",
      "--guidance 99 is outside the allowed range 1.0–30.0"]),
    (["generate", " ", "--frames", "1.5", "--guidance=nan", "--width", "\u0661\u0662\u0668", "--sampler", "euler"],
     ["argument --frames: '1.5' is not a whole number (digits 0-9 only); write one from 1 to 64",
      "argument --width: '\u0661\u0662\u0668' is not a whole number (digits 0-9 only); write one from 64 to 1024",
      "the prompt is empty: describe the video to generate", "--guidance nan is outside the allowed range 1.0–30.0",
      "--sampler euler is not one of ddim, dpmpp-2m"]),
    (["convert", "tiny-random", "", "--width", "x", "--dtype", "fp4"],  # the destination's own checks are skipped
     ["argument destination: is empty: name a path",
      "argument --width: 'x' is not a whole number (digits 0-9 only); write one from 64 to 1024",
      "--dtype fp4: not a dtype t2v knows; use one of float32, fp32, float16, fp16, bfloat16, bf16"]),
    (["bench", "--tiny", "--device", "cpu", "--configs", "huge", "standard", "--steps", "x", "--backend", "eagre"],
     ["argument --configs: invalid choice: 'huge' (choose from 'standard', 'batch2', 'batch4', 'batch8', 'batch16', "
      "'zeroscope')", "argument --steps: 'x' is not a whole number (digits 0-9 only); write one from 1 to 150",
      "--backend eagre: not a torch.compile backend; use one of "]),
])
def test_one_run_names_every_bad_value_argparse_could_not_read_and_every_other(tmp_path, monkeypatch, capsys, no_work,
                                                                               argv, lines):
    """A stranger fixed one value, ran again and met the next: argparse stopped at the first it could not read."""
    monkeypatch.chdir(tmp_path)
    found = refused(argv, capsys)
    assert len(found) == len(lines)
    assert all(line.startswith(f"error: {said}") for line, said in zip(found, lines, strict=True))
    assert not list(tmp_path.iterdir())


def test_a_command_line_argparse_cannot_follow_still_names_the_values_before_it(tmp_path, capsys, no_work):
    assert refused(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--steps", "abc", "--seed", "x",
                    "--guidance"], capsys) == [
        "error: argument --steps: 'abc' is not a whole number (digits 0-9 only); write one from 1 to 150",
        "error: argument --seed: 'x' is not a whole number (digits 0-9 only); write one from 0 to 9223372036854775807",
        "error: argument --guidance: expected one argument"]


def test_an_output_argparse_could_not_read_is_not_also_judged_with_overwrite(tmp_path, monkeypatch, capsys, no_work):
    monkeypatch.chdir(tmp_path)  # "--overwrite: … none is named" would have been the second, wrong, line
    assert refused(["generate", "a cat", "-o", "", "--overwrite"], capsys) == [
        "error: argument -o/--output: is empty: name a path"]


def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


def interrupted(run, *args):
    """run(*args), where an interrupt that escapes it (a traceback for the user) fails the test, not pytest's run."""
    try:
        return run(*args)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C came out of the command as a traceback")


@pytest.mark.parametrize(("module", "name", "argv"), [
    (t2v.cli, "build_parser", ["generate", "a cat"]),  # reading the options
    (t2v.preflight, "mp4_file", ["generate", "a cat", "-o", "x.mp4"]),  # the checks
    (t2v.preflight, "model_source", ["generate", "a cat"]),  # the checks that read a model's weight files
    (t2v.cli, "load_pipeline", ["generate", "a cat", "-o", "x.mp4"]),  # loading the model
    (t2v.preflight, "output_folder", ["download", "weights"]),  # another command's checks
    (t2v.preflight, "compile_backend", ["bench", "--tiny", "--device", "cpu", "--no-diffusers"]),  # torch._dynamo
])
def test_ctrl_c_before_any_work_is_the_one_line_and_exit_130(tmp_path, monkeypatch, capsys, module, name, argv):
    monkeypatch.chdir(tmp_path)  # was a traceback ending in KeyboardInterrupt, for all but the load
    monkeypatch.setattr(module, name, ctrl_c)
    assert interrupted(main, argv) == 130
    assert capsys.readouterr().err.splitlines() == ["interrupted: nothing was written"]
    assert not list(tmp_path.iterdir())


def test_ctrl_c_while_python_m_t2v_loads_torch_is_the_same_line(monkeypatch, capsys):
    class Loading:  # t2v.cli as Ctrl-C meets its import of torch (seconds)
        def __getattr__(self, name: str) -> None:
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "t2v.cli", Loading())
    with pytest.raises(SystemExit) as exit_:
        interrupted(runpy.run_module, "t2v", None, "__main__")
    assert exit_.value.code == 130
    assert capsys.readouterr().err.splitlines() == ["interrupted: nothing was written"]


@pytest.fixture
def fresh_ctrl_c():
    """SIGINT as a `python -m t2v` typed at a terminal starts with it: Python's default_int_handler. The test process
    may hold another: SIG_IGN when pytest was started in the background (`&`, nohup), which a child inherits and
    Python then keeps, or a handler an earlier test left (python -m bot's). Given back after."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_that_a_loading_module_would_swallow_still_stops_the_run(monkeypatch, capsys, fresh_ctrl_c):
    """A real SIGINT as t2v.cli's imports run, into code that catches KeyboardInterrupt as torch's and numpy's
    imports can (the run then went on and wrote its video): kept for after the imports, then the one line."""
    # was flaky: it used whatever SIGINT handler pytest's process held (a suite started with `&`: SIG_IGN, status 0)
    ran = []

    class Swallowing:
        def __getattr__(self, name: str):
            try:
                signal.raise_signal(signal.SIGINT)
                sum(range(1000))  # bytecodes, where a Python signal handler runs
            except KeyboardInterrupt:
                pass  # what the default handler's interrupt would meet inside such an import
            return lambda: ran.append(name) or 0

    monkeypatch.setitem(sys.modules, "t2v.cli", Swallowing())
    with pytest.raises(SystemExit) as exit_:
        interrupted(runpy.run_module, "t2v", None, "__main__")
    assert (exit_.value.code, ran) == (130, [])
    assert capsys.readouterr().err.splitlines() == ["interrupted: nothing was written"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back


def test_a_run_started_with_ctrl_c_ignored_keeps_ignoring_it_while_loading(monkeypatch, capsys):
    """`nohup python -m t2v …` or one started with `&`: SIGINT is ignored from the start, and stays so."""
    ran = []

    class Loading:
        def __getattr__(self, name: str):
            signal.raise_signal(signal.SIGINT)
            return lambda: ran.append(name) or 0

    monkeypatch.setitem(sys.modules, "t2v.cli", Loading())
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(SystemExit) as exit_:
            interrupted(runpy.run_module, "t2v", None, "__main__")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (exit_.value.code, ran) == (0, ["main"])
    assert capsys.readouterr().err == ""


def test_fp8_with_a_style_is_refused_before_the_model_loads(tmp_path, capsys, no_work, monkeypatch):
    from t2v import preflight

    style = tmp_path / "style.safetensors"
    monkeypatch.setattr(preflight, "lora", lambda option, value: None)  # a LoRA file that reads as one
    monkeypatch.setattr(preflight, "device", lambda option, name: None)  # a GPU with fp8 tensor cores
    monkeypatch.setattr(preflight.fp8, "unavailable", lambda device: None)
    lines = refused(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--device", "cuda", "--dtype", "fp8",
                     "--lora", str(style)], capsys)
    assert lines == ["error: --dtype fp8 with --lora: a style is fused into the UNet's weights, which fp8 keeps in "
                     "e4m3, too coarse to hold it; use --dtype float16 (or bfloat16) for a style, or leave --lora out"]
