"""A STYLES_FILE that declares a style, or one of its keys, twice (a table pasted again, a key edited in two places):
one line each, naming the style (and key), the file and both lines, and what would be right, instead of the TOML
parser's own "Cannot declare ('clay',) twice (at line 7, column 7)"."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.gpu.styles import read_styles


def problems(tmp_path: Path, text: str, *, newline: str = "\n") -> tuple[Path, list[str]]:
    path = tmp_path / "styles.toml"
    path.write_bytes(text.replace("\n", newline).encode())
    with pytest.raises(SettingsError) as caught:
        read_styles(path, check_files=False)  # the form alone: each of these is refused before its file is looked at
    return path, caught.value.lines


@pytest.mark.parametrize("newline", ["\n", "\r\n"])  # as written on Linux, and by Notepad
def test_a_style_declared_twice_is_one_line_naming_it_and_both_lines(tmp_path: Path, newline: str):
    text = ('[anime]\nfile = "anime.safetensors"\n\n[clay]\nfile = "clay.safetensors"\n\n'
            '[anime]  # pasted again\nfile = "anime-v2.safetensors"\nscale = 0.7\n')
    path, lines = problems(tmp_path, text, newline=newline)

    assert lines == [f"STYLES_FILE={path}: the style [anime] is declared twice (at lines 1 and 7); give each style "
                     "name one table: merge the two, or rename one"]


@pytest.mark.parametrize(("text", "first", "second"), [
    ('anime.file = "anime.safetensors"\n\n[anime]\nscale = 0.7\n', 1, 3),  # a dotted key makes the table too
    ('anime = { file = "anime.safetensors" }\n\n[anime]\nscale = 0.7\n', 1, 3),  # so does an inline table
    ('[[anime]]\nfile = "anime.safetensors"\n\n[anime]\nscale = 0.7\n', 1, 4),
    ('["anime"]\nfile = "anime.safetensors"\n\n[ anime ]\nscale = 0.7\n', 1, 4),  # the same name, written two ways
])
def test_a_style_declared_twice_in_other_forms_is_the_same_one_line(tmp_path: Path, text: str, first: int,
                                                                    second: int):
    path, lines = problems(tmp_path, text)

    assert lines == [f"STYLES_FILE={path}: the style [anime] is declared twice (at lines {first} and {second}); give "
                     "each style name one table: merge the two, or rename one"]


@pytest.mark.parametrize(("text", "key", "first", "second"), [
    ('[clay]\nfile = "clay.safetensors"\nscale = 0.8\nscale = 0.6\n', "scale", 3, 4),
    ('[clay]\nfile = "clay.safetensors"\nprefix = "clay, "\n"file" = "clay-v2.safetensors"\n', "file", 2, 4),
    ("clay.file = 'clay.safetensors'\nclay.scale = 0.8\nclay.file = 'clay-v2.safetensors'\n", "file", 1, 3),
    ('[clay]\nfile = "clay.safetensors"\nfile.scale = 0.8\n', "file", 2, 3),  # a dotted key under a value
    ('[clay]\nprefix = """\nclay, [clay]\nscale = 1\n"""\nscale = 0.8\nscale = 0.6\n', "scale", 6, 7),
])
def test_a_key_given_twice_is_one_line_naming_the_style_the_key_and_both_lines(tmp_path: Path, text: str, key: str,
                                                                                first: int, second: int):
    path, lines = problems(tmp_path, text)

    assert lines == [f"STYLES_FILE={path} [clay]: {key} is given twice (at lines {first} and {second}); give each key "
                     "once: keep the one you mean and remove the other"]


def test_each_style_and_key_declared_twice_is_its_own_line(tmp_path: Path):
    path, lines = problems(tmp_path, '[clay]\nfile = "a.safetensors"\nfile = "b.safetensors"\n\n'
                                     '[anime]\nfile = "c.safetensors"\n\n[anime]\nfile = "d.safetensors"\n')

    assert lines == [f"STYLES_FILE={path} [clay]: file is given twice (at lines 2 and 3); give each key once: keep the "
                     "one you mean and remove the other",
                     f"STYLES_FILE={path}: the style [anime] is declared twice (at lines 5 and 8); give each style "
                     "name one table: merge the two, or rename one"]


@pytest.mark.parametrize("text", [
    '[clay]\nprefix = """\n[clay]\nfile = 1\n"""\nfile =\n',  # "twice" only inside a string; the error is the value
    '[clay]\n"file.x" = 1\nfile.x =\n',  # a quoted key with a dot is another key than the dotted one
    '[[clay]]\nfile = "a.safetensors"\n[[clay]]\nfile = "b.safetensors"\nscale\n',  # an array's tables may repeat
])
def test_a_file_whose_problem_is_not_a_repeat_keeps_the_toml_parsers_line(tmp_path: Path, text: str):
    path, [line] = problems(tmp_path, text)

    assert line.startswith(f"STYLES_FILE={path}: not valid TOML (") and "twice" not in line
