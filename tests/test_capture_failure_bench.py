"""benchmarks/capture_failure.py needs a GPU: on a machine without one it says so in one line, before any work."""

import sys
from pathlib import Path

import pytest
import torch

from tests.scripts import load_script


def test_without_a_gpu_the_probe_refuses_in_one_line(monkeypatch, capsys):
    probe = load_script(Path("benchmarks") / "capture_failure.py")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["capture_failure.py"])
    with pytest.raises(SystemExit) as exit_:
        probe.main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "needs a CUDA GPU: the failure it checks is a CUDA graph capture's")
