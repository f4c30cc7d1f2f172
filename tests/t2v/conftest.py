"""Shared t2v fixtures: a ModelScope-layout directory of random weights and the tiny-random pipeline."""

import pytest

import t2v.cli
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


@pytest.fixture(scope="session")
def diffusers_256(tmp_path_factory):
    """(diffusers TextToVideoSDPipeline, its save_pretrained directory): the 256² model's structure, random."""
    from tests.t2v.diffusers_dirs import UNET_256, diffusers_pipeline, write_diffusers_dir

    pipe = diffusers_pipeline(UNET_256, seed=1)
    return pipe, write_diffusers_dir(tmp_path_factory.mktemp("diffusers") / "text-to-video-tiny", pipe)


@pytest.fixture(scope="session")
def diffusers_576(tmp_path_factory):
    """The same for a directory named like zeroscope_v2_576w (so its defaults are 576×320, 24 frames)."""
    from tests.t2v.diffusers_dirs import UNET_576, diffusers_pipeline, write_diffusers_dir

    pipe = diffusers_pipeline(UNET_576, seed=2)
    return pipe, write_diffusers_dir(tmp_path_factory.mktemp("diffusers") / "zeroscope_v2_576w", pipe)


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if a command loads a model, converts one or downloads one."""
    def refuse(*args, **kwargs):
        raise AssertionError("the command started work before refusing its options")

    monkeypatch.setattr(t2v.cli, "load_pipeline", refuse)
    monkeypatch.setattr(t2v.cli, "convert", refuse)
    monkeypatch.setattr(t2v.cli, "download", refuse)
