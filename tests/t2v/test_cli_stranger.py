"""`python -m t2v generate` given what a stranger types in a first hour: a prompt from a terminal that is not UTF-8,
the prompt again as the negative prompt, a LoRA that only the loaded model can refuse. Each is one line naming
the value, before any work where it can be known then."""

import pytest

from t2v.cli import build_parser, main, problems
from tests.t2v.helpers import refused

LATIN1_CAFE = "caf\udce9 panda"  # `café panda` from an ISO-8859-1 terminal, as Python decodes argv as UTF-8


@pytest.mark.parametrize(("argv", "line"), [
    (["generate", LATIN1_CAFE], "error: the prompt b'caf\\xe9 panda' is not UTF-8 text (byte 0xe9), so the text "
                                "encoder would read other characters than those typed; type it in UTF-8 (a terminal "
                                "set to UTF-8, e.g. LANG=C.UTF-8)"),
    (["generate", f"--prompt={LATIN1_CAFE}"], "error: the prompt b'caf\\xe9 panda' is not UTF-8 text (byte 0xe9)"),
    (["generate", "a panda", "--negative", "fl\udcf9"], "error: --negative b'fl\\xf9' is not UTF-8 text (byte 0xf9)"),
])
def test_a_prompt_typed_in_another_encoding_than_utf8_is_named_as_its_bytes_before_any_work(
        tmp_path, capsys, no_work, argv, line):
    # it rendered, the text encoder reading a stand-in token where the user typed é
    [said] = refused([*argv, "-o", str(tmp_path / "x.mp4")], capsys)
    assert said.startswith(line)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("prompt", "negative", "shown"), [
    ("a cat", "a cat", "a cat"),
    ("A  cat playing piano", "a cat playing piano ", "'a cat playing piano '"),  # read alike: lower case, one space
])
def test_a_negative_prompt_that_is_the_prompt_itself_is_refused_before_any_work(tmp_path, capsys, no_work, prompt,
                                                                                  negative, shown):
    # it rendered, guidance cancelling out (the bot refuses the same request)
    [said] = refused(["generate", prompt, "--negative", negative, "-o", str(tmp_path / "x.mp4")], capsys)
    assert said == (f"error: --negative {shown}: is the prompt itself, so guidance cancels out (the video renders as "
                    "at --guidance 1); name what to avoid, e.g. --negative \"blurry, low quality\", or leave "
                    "--negative out")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("negative", ["", "  ", "a cat, blurry", "a dog"])
def test_a_negative_prompt_other_than_the_prompt_or_none_is_taken(tmp_path, negative):
    args = build_parser().parse_args(["generate", "a cat", "--negative", negative, "-o", str(tmp_path / "x.mp4")])
    assert problems(args) == []


@pytest.mark.parametrize(("change", "says"), [
    ("shape", "does not fit the model tiny-random: layers whose shapes do not fit their weight: 1 (unet.conv_in: "),
    ("nan", "does not fit the model tiny-random: keys holding NaN or inf values: 1 (unet.conv_in.lora_A.weight)"),
])
def test_a_lora_the_loaded_model_refuses_is_one_line_naming_lora(tmp_path, capsys, change, says):
    # the line began with the file's name alone, unlike every other line about --lora
    import torch
    from safetensors.torch import save_file

    from t2v.config import tiny_config
    from tests.t2v.lora_files import random_lora

    state = random_lora(tiny_config())
    down = state["unet.conv_in.lora_A.weight"]
    state["unet.conv_in.lora_A.weight"] = (down[:, :3].contiguous() if change == "shape" else
                                           torch.full_like(down, float("nan")))
    save_file(state, tmp_path / "style.safetensors")
    lora, out = f"{tmp_path / 'style.safetensors'}:0.5", tmp_path / "x.mp4"
    assert main(["generate", "a cat", "-o", str(out), "--steps", "1", "--lora", lora]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --lora {lora}: ") and says in line
    assert not out.exists()
