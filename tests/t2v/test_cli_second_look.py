"""`python -m t2v` used as a stranger would, a second look: inputs the earlier CLI tests did not cover."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from t2v import preflight
from t2v.cli import main
from t2v.weights import export
from t2v.weights.diffusers import AGAIN
from tests.t2v.helpers import refused


@pytest.fixture
def export_dir(tmp_path):
    """A tiny-random export, to take files from as an interrupted copy would."""
    assert main(["convert", "tiny-random", str(tmp_path / "export")]) == 0
    return tmp_path / "export"


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_an_export_with_a_file_missing_or_empty_is_sent_back_to_convert_not_to_the_hub(export_dir, tmp_path, capsys,
                                                                                        no_work, damage):
    vae = export_dir / "vae.safetensors"
    if damage == "missing":
        vae.unlink()
    else:
        vae.write_bytes(b"")
    capsys.readouterr()
    lines = refused(["generate", "a cat", "--model", str(export_dir), "-o", str(tmp_path / "x.mp4")], capsys)
    assert lines == [f"error: --model {export_dir}: {vae} is {damage}; {export.REDO}"]


def test_a_diffusers_folder_with_an_empty_weight_file_gets_the_diffusers_advice(diffusers_256, tmp_path):
    folder = shutil.copytree(diffusers_256[1], tmp_path / "model")
    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    vae.write_bytes(b"")
    said = preflight.model_source("--model", str(folder), half=False)
    assert said == f"--model {folder}: {vae} is empty; {AGAIN.format(root=folder)}"


@pytest.mark.parametrize("name", ["style.safetensors", "style.bin", "folder/pytorch_lora_weights.safetensors"])
def test_an_empty_lora_file_is_said_to_be_empty(tmp_path, monkeypatch, capsys, no_work, name):
    monkeypatch.chdir(tmp_path)
    Path(name).parent.mkdir(exist_ok=True)
    Path(name).write_bytes(b"")  # was: "not a readable safetensors file (… header too small)", "(EOFError: )"
    given = str(Path(name).parent) if name.startswith("folder/") else name
    lines = refused(["generate", "a cat", "--lora", given, "-o", "x.mp4"], capsys)
    assert lines == [f"error: --lora {given}: {name} is empty (0 bytes: a download or copy cut short?); name a LoRA "
                     ".safetensors file, or a folder holding pytorch_lora_weights.safetensors"]
