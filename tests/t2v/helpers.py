"""Small helpers shared by the t2v tests."""

from __future__ import annotations

import errno
import io
import os
import types

import pytest
import torch


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """The norm of a - b relative to b's."""
    return float((a - b).norm() / b.norm())


def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make t2v.video's file writes fail as on a full disk (ENOSPC at the first write)."""
    import t2v.video

    class FullDisk(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(descriptor: int, mode: str) -> io.BytesIO:
        os.close(descriptor)
        return FullDisk()

    monkeypatch.setattr(t2v.video, "os", types.SimpleNamespace(**{**vars(os), "fdopen": fdopen}))
