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


ZEROSCOPE = "https://huggingface.co/cerspense/zeroscope_v2_576w"
GET_ZEROSCOPE = "python -m t2v download weights/zeroscope_v2_576w --repo cerspense/zeroscope_v2_576w"


@pytest.mark.parametrize("address", [ZEROSCOPE, f"{ZEROSCOPE}/tree/main"])
def test_a_hub_web_address_as_model_is_answered_with_the_download_of_that_repo(tmp_path, capsys, no_work, address):
    # was: "download the official model into it first with `python -m t2v download https://huggingface.co/…`"
    lines = refused(["generate", "a cat", "--model", address, "-o", str(tmp_path / "x.mp4")], capsys)
    assert lines == [f"error: --model {address}: model source {address!r} is the web address of the Hugging Face "
                     f"repo cerspense/zeroscope_v2_576w, and t2v loads folders; download it first with "
                     f"`{GET_ZEROSCOPE}`, then load weights/zeroscope_v2_576w"]


def test_another_web_address_as_model_is_not_offered_a_download_into_it(tmp_path, capsys, no_work):
    lines = refused(["generate", "a cat", "--model", "https://example.com/t2v.zip", "-o", str(tmp_path / "x.mp4")],
                    capsys)
    assert lines == ["error: --model https://example.com/t2v.zip: model source 'https://example.com/t2v.zip' is a web "
                     "address, and t2v loads folders on this machine; download the model into a folder first, and "
                     "name that folder"]


def test_download_into_a_hub_web_address_is_refused_before_fetching_the_official_repo_there(tmp_path, monkeypatch,
                                                                                              capsys, no_work):
    monkeypatch.chdir(tmp_path)  # was: the official repo fetched into ./https:/huggingface.co/cerspense/…
    lines = refused(["download", ZEROSCOPE], capsys)
    assert lines == [f"error: argument directory: {ZEROSCOPE} is the web address of the Hugging Face repo "
                     f"cerspense/zeroscope_v2_576w, not a folder; to download it: {GET_ZEROSCOPE}"]
    assert list(tmp_path.iterdir()) == []


def test_a_hub_web_address_as_repo_is_answered_with_its_id(tmp_path, capsys, no_work):
    lines = refused(["download", str(tmp_path / "z"), "--repo", ZEROSCOPE], capsys)
    assert lines == [f"error: argument --repo: {ZEROSCOPE!r} is the repo's web address; write its id, --repo "
                     "cerspense/zeroscope_v2_576w"]


def test_convert_into_an_unexpanded_variable_is_refused_and_makes_no_folder_named_after_it(tmp_path, monkeypatch,
                                                                                           capsys, no_work):
    monkeypatch.chdir(tmp_path)  # was: `wrote $OUT/exp`, into a new folder ./$OUT (Docker's exec-form CMD, '$OUT')
    monkeypatch.delenv("OUT", raising=False)
    lines = refused(["convert", "tiny-random", "$OUT/exp"], capsys)
    assert lines == ["error: argument destination: $OUT/exp: $OUT is not expanded here (a shell expands it, but not "
                     "inside single quotes, nor does Docker's exec-form CMD), and OUT is not set; write the path out"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("typed", ["$T2V_WEIGHTS/ms", "${T2V_WEIGHTS}/ms"])
def test_a_model_or_folder_under_an_unexpanded_variable_is_answered_with_the_path_it_stands_for(
        tmp_path, monkeypatch, capsys, no_work, typed):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("T2V_WEIGHTS", "/srv/weights")
    variable = typed.partition("/")[0]
    said = (f"{variable} is not expanded here (a shell expands it, but not inside single quotes, nor does Docker's "
            "exec-form CMD); write /srv/weights/ms")
    assert refused(["download", typed], capsys) == [f"error: argument directory: {typed}: {said}"]
    lines = refused(["generate", "a cat", "--model", typed, "-o", "x.mp4"], capsys)
    assert lines == [f"error: --model {typed}: {said}"]


def test_a_folder_really_named_with_a_dollar_is_taken_as_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "$OUT").mkdir()
    assert main(["convert", "tiny-random", "$OUT/exp"]) == 0
    assert (tmp_path / "$OUT" / "exp" / export.MANIFEST).is_file()
