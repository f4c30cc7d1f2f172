"""`convert … a/b/c/exp` makes a/b/c to write into: a failed or interrupted export removes the folders it made
(those only, and only while empty), as it removes what it wrote of the export."""

import errno

import pytest
import torch

from t2v.config import tiny_config
from t2v.errors import WriteError
from t2v.weights import export

STATES = {name: {"weight": torch.ones(2)} for name in export.FILES}


def failing_after(count: int, error: BaseException):
    """write_safetensors that writes `count` files, then raises `error`."""
    written = []

    def write(state, path, dtype):
        if len(written) == count:
            raise error
        written.append(path)
        real(state, path, dtype)

    real = export.write_safetensors
    return write


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_export_removes_the_empty_folders_it_made_and_keeps_the_rest(tmp_path, monkeypatch, error):
    (tmp_path / "a").mkdir()
    monkeypatch.setattr(export, "write_safetensors", failing_after(1, error))
    with pytest.raises(WriteError if isinstance(error, OSError) else KeyboardInterrupt):
        export.write_export(tiny_config(), STATES, tmp_path / "a" / "b" / "c" / "exp", None, "tiny-random")
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "a"]  # b and c were made for it; a was there


def test_a_made_folder_that_got_other_files_stays(tmp_path, monkeypatch):
    def write(state, path, dtype):
        (tmp_path / "b" / "notes.txt").write_text("another program's")
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(export, "write_safetensors", write)
    with pytest.raises(WriteError):
        export.write_export(tiny_config(), STATES, tmp_path / "b" / "c" / "exp", None, "tiny-random")
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "b", tmp_path / "b" / "notes.txt"]


def test_a_written_export_keeps_the_folders_made_for_it(tmp_path):
    folder = export.write_export(tiny_config(), STATES, tmp_path / "a" / "b" / "exp", None, "tiny-random")
    assert sorted(path.name for path in folder.iterdir()) == sorted([*export.FILES.values(), export.MANIFEST])
