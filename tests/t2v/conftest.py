"""Shared t2v fixtures: a ModelScope-layout directory of random weights and the tiny-random pipeline."""

import pytest

from t2v import load_pipeline
from tests.t2v.layouts import write_modelscope_dir


@pytest.fixture(scope="session")
def modelscope_dir(tmp_path_factory):
    """A directory exactly as published (configuration.json + the three checkpoints), small UNet, random weights."""
    return write_modelscope_dir(tmp_path_factory.mktemp("modelscope") / "model")


@pytest.fixture(scope="session")
def tiny_pipe():
    """The tiny-random preset on the CPU."""
    return load_pipeline("tiny-random")
