"""A model source's weight files are checked whole before any work, from their headers and ends (never their GBs),
and a file named where its folder belongs is answered with the folder."""

import json
import struct
from pathlib import Path

import pytest
import torch

from t2v import preflight
from t2v.weights.modelscope import DEFAULT_FILES
from tests.t2v.helpers import UNET, modelscope_folder


def safetensors_file(path: Path, size: int, *, cut: int | None = None, extra: bytes = b"") -> Path:
    """A safetensors file whose header lists one float32 tensor of `size` bytes: sparse (its data a hole, never
    written), cut to `cut` bytes when given."""
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "weight": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}}).encode()
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(header)) + header)
        file.truncate(8 + len(header) + size)
        file.seek(0, 2)
        file.write(extra)
    if cut is not None:
        with open(path, "r+b") as file:
            file.truncate(cut)
    return path


def test_a_whole_model_folder_passes_and_whole_files_of_other_networks_do_not(modelscope_dir, tmp_path):
    assert preflight.model_source("--model", str(modelscope_dir)) is None
    folder = modelscope_folder(tmp_path / "model")  # whole torch files, of no network: told from their keys
    said = preflight.model_source("--model", str(folder))
    assert said.startswith(f"--model {folder}: {folder / 'VQGAN_autoencoder.pth'} has no 'first_stage_model.*' keys")


def test_a_truncated_checkpoint_is_one_line_naming_it_its_size_and_the_download_again(tmp_path):
    folder = modelscope_folder(tmp_path / "model")
    unet = folder / UNET
    unet.write_bytes(unet.read_bytes()[:1000])

    assert preflight.model_source("T2V_MODEL", str(folder)) == (
        f"T2V_MODEL={folder}: {unet} is truncated: 1,000 bytes, and the end of its zip archive, where a whole torch "
        f"checkpoint lists its tensors, is missing; delete it and download it again (`python -m t2v download {folder}` "
        "fetches what is missing)")


def test_each_damaged_checkpoint_is_named_in_the_one_line(tmp_path):
    folder = modelscope_folder(tmp_path / "model")
    legacy, pointer = folder / DEFAULT_FILES["ckpt_autoencoder"], folder / DEFAULT_FILES["ckpt_clip"]
    torch.save({"weight": torch.zeros(4)}, legacy, _use_new_zipfile_serialization=False)  # torch before 1.6
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 3944517011\n")
    pointed = pointer.stat().st_size

    problem = preflight.model_source("--model", str(folder))
    assert problem is not None and "\n" not in problem
    assert f"{legacy} is in torch's legacy format (before torch 1.6), which t2v cannot memory-map" in problem
    assert f"{pointer} is a Git LFS pointer ({pointed} bytes), not the weights it stands for" in problem
    assert problem.endswith("; delete them and download them again (`python -m t2v download "
                            f"{folder}` fetches what is missing)")


def test_a_file_that_is_no_checkpoint_says_how_it_starts(tmp_path):
    page = tmp_path / "open_clip_pytorch_model.bin"
    page.write_text("<!DOCTYPE html><html>rate limited</html>")
    assert preflight.weights_file(page) == (f"{page} is not a torch checkpoint (40 bytes): it is a web page (HTML: "
                                            "a download saved the page, not the file), not a zip archive")
    data = tmp_path / "text2video_pytorch_model.pth"
    data.write_bytes(bytes(range(200, 256)))
    assert preflight.weights_file(data) == (f"{data} is not a torch checkpoint (56 bytes): it is binary data starting "
                                            "b'\\xc8\\xc9\\xca\\xcb\\xcc\\xcd\\xce\\xcf', not a zip archive")


def test_a_truncated_safetensors_file_says_how_big_its_header_says_it_is_without_reading_its_data(tmp_path):
    whole = safetensors_file(tmp_path / "unet.safetensors", 3_400_000_000)  # sparse: read whole, this test would crawl
    assert preflight.weights_file(whole) is None

    cut = safetensors_file(tmp_path / "vae.safetensors", 3_400_000_000, cut=1000)
    assert preflight.weights_file(cut) == f"{cut} is truncated: 1,000 bytes, its header says 3.4 GB"


@pytest.mark.parametrize(("content", "says"), [
    (struct.pack("<Q", 500) + b"{}", "is truncated: 10 bytes, its header alone says 508 bytes"),
    (struct.pack("<Q", 4) + b"{no}", "is damaged: its header is not the JSON list of tensors a safetensors file "
                                     "starts with"),
    (b"PK\x03\x04" + b"\x00" * 12, "is not a safetensors file (16 bytes; it does not start with a header length "
                                  "and a JSON header)"),
    (struct.pack("<Q", 2), "is not a safetensors file (8 bytes; it does not start with a header length and a JSON "
                           "header)"),
])
def test_a_safetensors_header_that_does_not_fit_its_file_is_named(tmp_path, content, says):
    path = tmp_path / "text_encoder.safetensors"
    path.write_bytes(content)
    assert preflight.weights_file(path) == f"{path} {says}"


def test_bytes_past_what_a_safetensors_header_lists_are_damage(tmp_path):
    path = safetensors_file(tmp_path / "unet.safetensors", 4000, extra=b"\0" * 10)
    size = path.stat().st_size
    assert preflight.weights_file(path) == (f"{path} is damaged: {size:,} bytes, its header says {size - 10:,} "
                                            "bytes")


def test_a_file_named_as_the_model_is_answered_with_the_folder_to_name(tmp_path, monkeypatch):
    folder = modelscope_folder(tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    assert preflight.model_source("T2V_MODEL", f"model/{UNET}") == (
        f"T2V_MODEL=model/{UNET} is a file ({folder / UNET}); set it to the folder it is in, {folder}, which holds a "
        "model (modelscope layout)")

    other = tmp_path / "passwd"
    other.write_text("root:x:0:0::/root:/bin/sh\n")
    said = preflight.model_source("--model", str(other))
    assert said.startswith(f"--model {other} is a file; name the folder that holds the model's files (a ModelScope "
                           "download's configuration.json, ")
    assert "download" not in said.split("(", 1)[0]  # no download offered into a file's path


def test_a_relative_model_folder_that_is_not_there_is_shown_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    said = preflight.model_source("T2V_MODEL", "weights/modelscope")
    assert said.startswith(f"T2V_MODEL=weights/modelscope: model source 'weights/modelscope' "
                           f"({tmp_path / 'weights/modelscope'}) is neither 'tiny-random' nor an existing directory")


def test_a_model_under_a_folder_the_user_may_not_enter_is_one_line_naming_that_folder(tmp_path, monkeypatch, capsys,
                                                                                     no_work):
    from t2v.cli import main
    from t2v.errors import current_user
    from tests.permissions import lock_out

    home = lock_out(monkeypatch, tmp_path / "alice")  # /home/alice, mode 0700, to another user
    model = home / "models" / "modelscope"

    assert preflight.model_source("T2V_MODEL", str(model)) == (
        f"T2V_MODEL={model}: permission denied: user {current_user()} may not enter {home}, so it cannot read "
        f"{model}; let that user in (chown, or chmod o+x {home}) or move the model to a folder it may read")
    assert main(["generate", "a cat", "--model", str(model), "-o", str(tmp_path / "x.mp4")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --model {model}: permission denied: user "
                                                    f"{current_user()} may not enter {home}, so it cannot read "
                                                    f"{model}; let that user in (chown, or chmod o+x {home}) or move "
                                                    "the model to a folder it may read"]


def test_a_folder_to_write_under_one_the_user_may_not_enter_is_that_folder_denied(tmp_path, monkeypatch):
    from tests.permissions import lock_out

    home = lock_out(monkeypatch, tmp_path / "alice")
    existing, error = preflight.nearest_folder(home / "videos" / "new")
    assert existing == home and isinstance(error, PermissionError)
    said = preflight.output_folder("--out", home / "videos")
    assert said is not None and said.startswith(f"--out {home / 'videos'}: cannot write into {home} as user ")


@pytest.mark.parametrize("option", ["-o", "--lora"])
def test_a_file_under_a_folder_the_user_may_not_enter_is_one_line_naming_that_folder(option, tmp_path, monkeypatch,
                                                                                      capsys, no_work):
    from t2v.cli import main
    from t2v.errors import current_user
    from tests.permissions import lock_out

    home = lock_out(monkeypatch, tmp_path / "alice")
    output = tmp_path / "x.mp4" if option == "--lora" else home / "videos" / "x.mp4"
    extra = ["--lora", f"{home / 'styles' / 'clay.safetensors'}:0.8"] if option == "--lora" else []

    try:  # an option's type check (-o) ends in argparse's exit, the option checks (--lora) in main's status
        status = main(["generate", "a cat", "--model", "tiny-random", "-o", str(output), *extra])
    except SystemExit as exit:
        status = exit.code
    [line] = capsys.readouterr().err.splitlines()
    assert status == 2 and option in line.split(": ")[1] and line.endswith(
        f": permission denied: user {current_user()} may not enter {home}; let that user in (chown, or chmod o+x "
        f"{home}) or name a path elsewhere")
