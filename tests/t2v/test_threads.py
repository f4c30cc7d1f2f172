"""One pipeline used from several threads, or from a render's own callbacks: one call at a time, the other refused."""

import threading

import numpy as np
import pytest
import torch

from t2v import InvalidRequest, LoraError, load_pipeline
from tests.t2v.lora_files import random_lora

BUSY = (r"^{what} was refused: this pipeline is busy with a render \(called from another thread, or from a callback "
        r"of it\); call {what} once that has returned, or give each thread a pipeline of its own \(load_pipeline\)$")


@pytest.fixture
def pipe():
    """A tiny-random pipeline of its own with the LoRA "a" loaded, not applied."""
    pipe = load_pipeline("tiny-random")
    pipe.load_lora(random_lora(pipe.config, seed=1), "a")
    return pipe


def render_during(pipe, call) -> tuple[np.ndarray, list[BaseException]]:
    """The frames of a 3-step render that runs `call` in another thread after its first step, and what it raised."""
    raised = []

    def other() -> None:
        try:
            call()
        except Exception as exc:  # the test reads it
            raised.append(exc)

    def on_step(step: int, total: int) -> None:
        if step == 1:
            thread = threading.Thread(target=other)
            thread.start()
            thread.join()

    return pipe.generate(pipe.request("a panda", seed=1, steps=3), on_step=on_step).frames, raised


def test_a_style_set_from_another_thread_during_a_render_is_refused_and_the_video_keeps_its_style(pipe):
    """set_lora from a second thread changed the weights between two steps: a video half in one style, half in none."""
    plain = pipe.generate(pipe.request("a panda", seed=1, steps=3)).frames
    frames, raised = render_during(pipe, lambda: pipe.set_lora("a", 1.0))
    assert np.array_equal(frames, plain)
    [error] = raised
    with pytest.raises(LoraError, match=BUSY.format(what="set_lora")):
        raise error
    assert pipe.styles.active is None
    pipe.set_lora("a", 1.0)  # once the render has returned
    assert pipe.styles.active.name == "a"


def test_a_render_from_another_thread_during_a_render_is_refused_and_the_first_is_what_it_is_alone(pipe):
    alone = pipe.generate(pipe.request("a panda", seed=1, steps=3)).frames
    frames, raised = render_during(pipe, lambda: pipe.generate(pipe.request("a cat", seed=2, steps=2)))
    assert np.array_equal(frames, alone)
    [error] = raised
    with pytest.raises(InvalidRequest, match=BUSY.format(what="a render")):
        raise error


def test_a_callback_changing_the_style_mid_render_is_refused_and_the_pipeline_stays_usable(pipe):
    weights = {key: tensor.clone() for key, tensor in pipe.unet.state_dict().items()}
    with pytest.raises(LoraError, match=BUSY.format(what="set_lora")):
        pipe.generate(pipe.request("a panda", seed=1, steps=2), on_step=lambda step, total: pipe.set_lora("a"))
    assert pipe.styles.active is None
    assert all(torch.equal(weights[key], tensor) for key, tensor in pipe.unet.state_dict().items())
    assert pipe.generate(pipe.request("a panda", seed=1, steps=1)).frames.shape == (4, 64, 64, 3)
