"""Small helpers shared by the t2v tests."""

from __future__ import annotations

import errno
import io
import json
import os
import types
from pathlib import Path

import pytest
import torch

from t2v.weights.modelscope import DEFAULT_FILES

UNET = DEFAULT_FILES["ckpt_unet"]  # text2video_pytorch_model.pth


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """The norm of a - b relative to b's."""
    return float((a - b).norm() / b.norm())


def as_interpreted_e4m3(got: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether `got` is fp32 `x` cast to e4m3 as Triton's interpreter casts (3.8's `_convert_float`): to nearest,
    except that a rounding up into the next power of two may lose its carry (giving half of it), and subnormals
    truncate (within one step of 2⁻⁹). The GPU's conversion does neither."""
    rounded = x.to(torch.float8_e4m3fn).float()
    mantissa, _ = torch.frexp(rounded)
    carried = (mantissa.abs() == 0.5) & (rounded.abs() > x.abs())
    subnormal = x.abs() < 2**-6
    return bool(((got == rounded) | (carried & (got == rounded / 2))
                 | (subnormal & ((got - rounded).abs() <= 2**-9))).all())


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


def modelscope_folder(root: Path) -> Path:
    """The published ModelScope layout in miniature: configuration.json and the three torch zip checkpoints (not of
    the network's shapes: what the start checks read of them is their header and end)."""
    root.mkdir(parents=True)
    (root / "configuration.json").write_text(json.dumps({"model": {"model_cfg": {}, "model_args": {}}}))
    for name in DEFAULT_FILES.values():
        torch.save({"weight": torch.zeros(1000)}, root / name)
    return root


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The lines on stderr of a `python -m t2v` command that must be refused with exit status 2 (by argparse or by the
    checks)."""
    from t2v.cli import main  # lazily: the CLI loads torch's heavier parts

    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    return capsys.readouterr().err.splitlines()
