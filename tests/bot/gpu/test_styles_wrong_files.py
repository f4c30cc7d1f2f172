"""A style whose `file` is no LoRA at all (text, a web page, a safetensors file named .bin): the start stops in one
line naming the style, the file, what it is instead and what would be right, never the reader's exception text."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.gpu.styles import read_styles

HINT = "name a LoRA .safetensors file, or a folder holding pytorch_lora_weights.safetensors"
FIX = "fix the file, or mark the style optional = true to start without it"


@pytest.mark.parametrize(("name", "content", "says"), [
    # was "… could not be read as a LoRA file (IndexError: pop from empty list)"
    ("notes.bin", b"a text", "is not a torch checkpoint: it is text ('a text'), where torch.save writes a zip archive "
                             "or a pickle"),
    ("notes.safetensors", b"not a LoRA", "is not a readable safetensors file: it is text ('not a LoRA'), where a "
                                         "safetensors file starts with its header's length and a JSON header"),
])
def test_a_style_whose_file_is_text_stops_the_start_in_one_line_saying_so(tmp_path: Path, name, content, says):
    (tmp_path / name).write_bytes(content)
    path = tmp_path / "styles.toml"
    path.write_text(f'[notes]\nfile = "{name}"\n')

    with pytest.raises(SettingsError) as caught:
        read_styles(path)
    file = tmp_path / name
    assert caught.value.lines == [f"STYLES_FILE={path} [notes] file {file}: {file} {says}; {HINT}; {FIX}"]
