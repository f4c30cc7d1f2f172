"""benchmarks/groupnorm_layouts.py without a GPU: each form it times computes GroupNorm+SiLU on channels-last
activations as the library does, every shape splits into its blocks, and a machine without a GPU is told so."""

from pathlib import Path

import pytest
import torch

from tests.scripts import load_script


def _script():
    return load_script(Path("benchmarks") / "groupnorm_layouts.py")


@pytest.mark.parametrize("form", ["by_rows", "two_stage"])
def test_each_written_out_form_equals_the_library_groupnorm_on_channels_last_activations(form):
    script, g = _script(), torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 32, 320, generator=g).mul(3).add(1).permute(0, 3, 1, 2)  # [b, c, f, h·w], channels-last
    weight, bias = torch.randn(320, generator=g), torch.randn(320, generator=g)
    expected = script.library(x, weight, bias)
    got = getattr(script, form)(x, weight, bias)
    assert got.shape == expected.shape and float((got - expected).abs().max()) <= 1e-4


def test_every_shape_timed_splits_into_the_two_stage_blocks():
    script = _script()
    assert all(f * p % 64 == 0 for _, _, f, p in script.SHAPES.values())


def test_a_machine_without_a_gpu_is_told_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _script().main(["--shapes", "standard"]) == 2
    said = capsys.readouterr().err.splitlines()
    assert said == ["error: it times compiled kernels on a CUDA GPU, and torch sees none here"]


def test_the_fast_paths_module_is_timed_as_the_forms_are_and_equals_the_library_groupnorm():
    script, g = _script(), torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 32, 320, generator=g).mul(3).add(1).permute(0, 3, 1, 2)
    weight, bias = torch.randn(320, generator=g), torch.randn(320, generator=g)
    got = script.fast_path(weight, bias)(x, weight, bias)
    assert float((got - script.library(x, weight, bias)).abs().max()) <= 1e-4
