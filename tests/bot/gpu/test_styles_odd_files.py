"""Odd STYLES_FILEs a first-time operator writes: each refused at start in one line naming the value and what would
be right, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.gpu.styles import read_styles
from tests.bot.conftest import tiny_pipeline
from tests.bot.helpers import write_lora


def problems(path: Path) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        read_styles(path, check_files=False)  # the form alone: each of these is refused before its file is looked at
    return caught.value.lines


@pytest.mark.parametrize("optional", ["false", "true"])
def test_a_lora_path_starting_with_a_tilde_is_refused_as_the_path_settings_are(tmp_path: Path, optional: str):
    path = tmp_path / "styles.toml"  # it read as tmp_path/~/loras/clay.safetensors: "missing", or skipped if optional
    path.write_text(f'[clay]\nfile = "~/loras/clay.safetensors"\noptional = {optional}\n')

    assert problems(path) == [
        f"STYLES_FILE={path} [clay]: file = '~/loras/clay.safetensors': '~' is not expanded here (it would be a folder "
        f"named '~'); write the full path such as '{Path('~/loras/clay.safetensors').expanduser()}', or one relative "
        f"to {tmp_path}"]


def test_a_lora_path_with_spaces_at_its_ends_is_refused_showing_them(tmp_path: Path):
    path = tmp_path / "styles.toml"
    path.write_text('[clay]\nfile = "clay.safetensors "\n')

    assert problems(path) == [f"STYLES_FILE={path} [clay]: file = 'clay.safetensors ' has spaces at its ends, which "
                              "would be part of the path: remove them (file = 'clay.safetensors')"]


@pytest.mark.parametrize("text", ["", "\n\n", "# [clay]\n# file = \"clay.safetensors\"\n", "\ufeff"])
def test_a_styles_file_that_lists_no_style_is_one_line_saying_so(tmp_path: Path, text: str):
    path = tmp_path / "styles.toml"  # it started with no styles and no word why /video offered none
    path.write_text(text)

    assert problems(path) == [f"STYLES_FILE={path} lists no styles (it is empty, or all comments): add a table for "
                              "each style, such as [claymation] with file = \"claymation.safetensors\", or unset "
                              "STYLES_FILE to offer none"]


@pytest.mark.parametrize("optional", ["false", "true"])
def test_a_lora_path_with_the_clis_scale_after_a_colon_is_refused_before_the_model_loads(tmp_path: Path,
                                                                                         optional: str):
    """`--lora clay.safetensors:0.8` is the CLI's form: the start's check read clay.safetensors and passed, then each
    worker, the model loaded, looked for a file named clay.safetensors:0.8 (a required style stopped the start only
    then; an optional one was left out with a warning)."""
    write_lora(tmp_path / "clay.safetensors", tiny_pipeline().config)
    path = tmp_path / "styles.toml"
    path.write_text(f'[clay]\nfile = "clay.safetensors:0.8"\noptional = {optional}\n')

    with pytest.raises(SettingsError) as caught:
        read_styles(path)
    assert caught.value.lines == [f"STYLES_FILE={path} [clay]: file = 'clay.safetensors:0.8' ends with a scale, which "
                                  "a style gives on its own line: write file = 'clay.safetensors' and scale = 0.8"]


def test_a_huge_file_named_as_the_styles_file_is_told_apart_without_reading_it_whole(tmp_path: Path,
                                                                                     monkeypatch: pytest.MonkeyPatch):
    weights = tmp_path / "text2video_pytorch_model.pth"  # a model's weights (gigabytes) named by mistake
    with weights.open("wb") as file:
        file.write(b"PK\x03\x04\x00\x00")  # a .pth is a zip
        file.truncate(3 * 2**30)  # sparse: nothing on disk
    text = tmp_path / "huge.toml"
    text.write_text("# a comment\n" * (16 * 2**20 // 12 + 1))  # more than 16 MiB of text

    def whole(self: Path) -> bytes:
        raise AssertionError(f"{self} read whole")

    monkeypatch.setattr(Path, "read_bytes", whole)
    assert problems(weights) == [f"STYLES_FILE={weights}: not a UTF-8 TOML file (a NUL byte at offset 4: a binary "
                                 "file, or UTF-16); set STYLES_FILE to the TOML file that lists the styles (not a "
                                 "LoRA's .safetensors), saved as UTF-8"]
    assert problems(text) == [f"STYLES_FILE={text}: larger than 16.8 MB, so not a styles file; set STYLES_FILE to the "
                              "TOML file that lists the styles (docs/lora.md, \"Styles in the bot\")"]


def test_a_lora_path_holding_a_control_character_is_refused_naming_it(tmp_path: Path):
    path = tmp_path / "styles.toml"  # a NUL stopped the start with a ValueError traceback from the file check
    path.write_text('[clay]\nfile = "clay\\u0000.safetensors"\n')

    with pytest.raises(SettingsError) as caught:
        read_styles(path)
    assert caught.value.lines == [f"STYLES_FILE={path} [clay]: file = 'clay\\x00.safetensors' holds the control "
                                  "character '\\x00', which no file name should: remove it"]
