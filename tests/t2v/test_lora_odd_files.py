"""Files a stranger names as a LoRA (`--lora`, a style's `file`, `pipe.load_lora`) that are no LoRA at all: each is
one line saying what the file is instead and what would be right, before any model loads, and never the reader's
own complaint ("header too large", "KeyError: 101", "IndexError: pop from empty list")."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from t2v import preflight
from t2v.config import tiny_config
from t2v.errors import LoraError
from t2v.weights.lora import read_lora
from tests.t2v.lora_files import random_lora

HINT = "; name a LoRA .safetensors file, or a folder holding pytorch_lora_weights.safetensors"
TORCH = ", where torch.save writes a zip archive or a pickle"
SAFETENSORS = ", where a safetensors file starts with its header's length and a JSON header"


def _zip(path: Path, names: list[str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "x")


def _truncated_checkpoint(path: Path) -> None:
    torch.save({"unet.conv_in.lora_A.weight": torch.zeros(2, 4)}, path)
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize(("name", "write", "says"), [
    ("style.bin", lambda p: p.write_text("a text"), f"is not a torch checkpoint: it is text ('a text'){TORCH}"),
    ("style.pt", lambda p: p.write_text("hello\n"), f"is not a torch checkpoint: it is text ('hello'){TORCH}"),
    ("style.bin", lambda p: p.write_bytes(b"\n\n"),
     f"is not a torch checkpoint: it is blank text (spaces and line ends only){TORCH}"),
    ("style.bin", lambda p: p.write_text("<!DOCTYPE html><title>404</title>"),
     f"is not a torch checkpoint: it is a web page (HTML: a download saved the page, not the file){TORCH}"),
    ("style.safetensors", lambda p: p.write_text("not a LoRA"),
     f"is not a readable safetensors file: it is text ('not a LoRA'){SAFETENSORS}"),
    ("style.safetensors", lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\n"),
     "is not a readable safetensors file: it is a Git LFS pointer, not the file it stands for (`git lfs pull` "
     f"fetches it){SAFETENSORS}"),
    ("style.safetensors", lambda p: p.write_bytes(bytes(range(200, 256))),
     f"is not a readable safetensors file: it is binary data starting {bytes(range(200, 208))!r}{SAFETENSORS}"),
    ("style.bin", lambda p: _zip(p, ["readme.txt"]),
     "is a zip archive that is not a torch checkpoint (it holds readme.txt; torch.save writes <name>/data.pkl)"),
    ("style.bin", lambda p: _zip(p, []),
     "is a zip archive that is not a torch checkpoint (it holds nothing; torch.save writes <name>/data.pkl)"),
    ("style.bin", _truncated_checkpoint,
     "is not a readable torch checkpoint: it starts as a zip archive, but the end of the archive, where torch lists "
     "its tensors, is missing or damaged (a download or copy cut short?)"),
    ("style.bin", lambda p: save_file({"unet.conv_in.lora_A.weight": torch.zeros(2, 4)}, p),
     "is a safetensors file, not a torch checkpoint: name it style.safetensors"),
    ("style.safetensors", lambda p: torch.save({"unet.conv_in.lora_A.weight": torch.zeros(2, 4)}, p),
     "is a torch checkpoint, not a safetensors file: name it style.bin"),
])
def test_a_file_that_is_no_lora_says_what_it_is_in_one_line_before_the_model_loads(tmp_path: Path, name, write,
                                                                                   says):
    path = tmp_path / name
    write(path)
    line = f"{path} {says}{HINT}"

    assert preflight.lora("--lora", str(path)) == f"--lora {path}: {line}"  # the CLI's check, and the bot's styles'
    with pytest.raises(LoraError) as caught:
        read_lora(path, tiny_config())  # pipe.load_lora, on the bot's workers
    assert str(caught.value) == line


def test_a_damaged_pickle_is_one_line_without_the_unpicklers_complaint(tmp_path: Path):
    path = tmp_path / "style.bin"
    path.write_bytes(b"\x80")  # a pickle's first byte, then nothing: torch.load raised "IndexError: index out of range"

    assert preflight.lora("--lora", str(path)) == (f"--lora {path}: {path} is not a readable torch checkpoint: it "
                                                   f"starts as one but is damaged or cut short (torch.load could not "
                                                   f"read it){HINT}")


def _one_layer_changed(path: Path, change) -> tuple[Path, str]:
    """random_lora with its first layer's A and B passed through `change`; (the file, that layer's name)."""
    state = random_lora(tiny_config())
    down = next(key for key in state if key.startswith("unet.") and key.endswith(".lora_A.weight"))
    up = down.replace("lora_A", "lora_B")
    state[down], state[up] = change(state[down], state[up])
    save_file(state, str(path))
    return path, down.removesuffix(".lora_A.weight")


@pytest.mark.parametrize(("change", "says"), [
    (lambda down, up: (down[:0], up[:, :0]), "rank 0, torch.float32 and torch.float32"),  # was ZeroDivisionError
    (lambda down, up: (down.to(torch.int64), up.to(torch.int64)), "rank 2, torch.int64 and torch.int64"),
    (lambda down, up: (down > 0, up > 0), "rank 2, torch.bool and torch.bool"),  # was fused as 0s and 1s
])
def test_a_layer_of_rank_0_or_of_integers_is_refused_naming_it(tmp_path: Path, change, says):
    path, layer = _one_layer_changed(tmp_path / "style.safetensors", change)

    with pytest.raises(LoraError) as caught:
        read_lora(path, tiny_config())
    assert str(caught.value) == (f"{path} does not fit the model tiny-random: layers of rank 0 or whose A and B are "
                                 f"not floating-point numbers: 1 ({layer}: {says})")


def test_a_link_to_a_lora_that_is_not_there_names_where_it_points(tmp_path: Path):
    path = tmp_path / "style.safetensors"  # an operator's loras/ folder of links into a download folder, moved since
    path.symlink_to(tmp_path / "downloads" / "style.safetensors")

    assert preflight.lora("--lora", str(path)) == (f"--lora {path}: {path} is a link to {tmp_path}/downloads/style."
                                                   f"safetensors, which does not exist{HINT}")  # was "… is missing"
