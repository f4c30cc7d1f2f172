"""Loading the published layout, our export and the preset; strict, clear errors for everything else."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from t2v import GenerationRequest, InvalidRequest, UnsupportedDevice, WeightsError, convert, load_pipeline
from t2v.loader import detect_layout
from t2v.weights.files import RestrictedPickle
from t2v.weights.modelscope import read_vae
from tests.t2v.layouts import save_lightning_checkpoint

REQUEST = GenerationRequest("a panda eating bamboo on a rock", seed=11, steps=3, frames=4, width=64, height=64)


@pytest.fixture
def broken_dir(modelscope_dir, tmp_path):
    """A writable copy of the ModelScope directory, for tests that damage one file."""
    return Path(shutil.copytree(modelscope_dir, tmp_path / "copy"))


def test_modelscope_directory_loads_and_generates(modelscope_dir):
    pipe = load_pipeline(modelscope_dir)
    assert pipe.config.frames == 4 and pipe.config.text.width == 64  # max_frames and widths from configuration.json
    result = pipe.generate(REQUEST)
    assert result.frames.shape == (4, 64, 64, 3) and result.frames.dtype == np.uint8
    assert not result.is_noise


def test_converted_export_gives_identical_frames(modelscope_dir, tmp_path):
    export = convert(modelscope_dir, tmp_path / "export", dtype="float32")
    assert detect_layout(export) == "export"
    a, b = load_pipeline(modelscope_dir).generate(REQUEST), load_pipeline(export).generate(REQUEST)
    assert np.array_equal(a.frames, b.frames)


def test_convert_writes_fp16_safetensors_by_default(modelscope_dir, tmp_path):
    export = convert(modelscope_dir, tmp_path / "export")
    unet = load_file(export / "unet.safetensors")
    assert {t.dtype for t in unet.values()} == {torch.float16}
    assert "input_blocks.1.0.temopral_conv.conv1.2.weight" in unet
    result = load_pipeline(export).generate(REQUEST)  # loads fp16 weights into an fp32 pipeline
    assert result.frames.shape == (4, 64, 64, 3)


def test_same_seed_gives_identical_frames_and_a_new_seed_differs(tiny_pipe):
    a, b = tiny_pipe.generate(REQUEST), tiny_pipe.generate(REQUEST)
    c = tiny_pipe.generate(GenerationRequest(REQUEST.prompt, seed=12, steps=3, frames=4, width=64, height=64))
    assert np.array_equal(a.frames, b.frames) and a.seed == 11
    assert not np.array_equal(a.frames, c.frames)


def test_tiny_random_says_it_is_noise(tiny_pipe):
    result = tiny_pipe.generate(REQUEST)
    assert result.is_noise and any("noise" in note for note in result.notes)


class Payload:
    """A pickle that would create a file if anything executed it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_lightning_checkpoint_loads_without_running_its_globals(broken_dir, tmp_path):
    marker = tmp_path / "pwned"
    path = broken_dir / "VQGAN_autoencoder.pth"
    state = {k: v.clone() for k, v in read_vae(path).items()}  # not memory-mapped views of `path`
    save_lightning_checkpoint(state, path, extra={"evil": Payload(marker)})
    load_pipeline(broken_dir)
    assert not marker.exists()
    torch.load(path, weights_only=False, pickle_module=RestrictedPickle)  # the same file, read twice
    assert not marker.exists()


@pytest.mark.parametrize("name", ["text2video_pytorch_model.pth", "VQGAN_autoencoder.pth",
                                  "open_clip_pytorch_model.bin"])
def test_truncated_weight_file_names_the_file(broken_dir, name):
    path = broken_dir / name
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match=name):
        load_pipeline(broken_dir)


def test_missing_weight_file_names_it_and_where_to_get_it(broken_dir):
    (broken_dir / "open_clip_pytorch_model.bin").unlink()
    with pytest.raises(WeightsError, match=r"open_clip_pytorch_model.bin is missing.*ali-vilab"):
        load_pipeline(broken_dir)


def test_missing_and_extra_unet_keys_are_named(broken_dir):
    path = broken_dir / "text2video_pytorch_model.pth"
    state = torch.load(path)
    del state["out.2.weight"]
    state["input_blocks.0.9.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(WeightsError) as err:
        load_pipeline(broken_dir)
    message = str(err.value)
    assert "text2video_pytorch_model.pth" in message and "out.2.weight" in message
    assert "input_blocks.0.9.weight" in message and "missing" in message and "unexpected" in message


def test_wrong_shape_is_named_with_both_shapes(broken_dir):
    path = broken_dir / "text2video_pytorch_model.pth"
    state = torch.load(path)
    state["out.2.weight"] = torch.zeros(4, 32, 1, 1)
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"out\.2\.weight: file \(4, 32, 1, 1\), model \(4, 32, 3, 3\)"):
        load_pipeline(broken_dir)


def test_configuration_with_another_architecture_is_refused(broken_dir):
    config = json.loads((broken_dir / "configuration.json").read_text())
    config["model"]["model_cfg"]["unet_dim"] = 64
    (broken_dir / "configuration.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="wrong shapes"):
        load_pipeline(broken_dir)


def test_unknown_directory_layout_is_refused(tmp_path):
    (tmp_path / "weights.ckpt").write_bytes(b"\0")
    with pytest.raises(WeightsError, match="not a known model layout"):
        load_pipeline(tmp_path)


def test_nonexistent_source_is_refused():
    with pytest.raises(WeightsError, match="neither 'tiny-random' nor an existing directory"):
        load_pipeline("no-such-model")


def test_a_file_as_the_source_is_refused_naming_the_folder_to_load_instead(broken_dir, monkeypatch):
    monkeypatch.chdir(broken_dir)
    with pytest.raises(WeightsError) as raised:
        load_pipeline("text2video_pytorch_model.pth")
    said, unet = str(raised.value), broken_dir / "text2video_pytorch_model.pth"
    assert said.startswith(f"model source 'text2video_pytorch_model.pth' ({unet}) is a file; load the folder that "
                           "holds the model's files (a ModelScope download's ")
    assert "python -m t2v download" not in said  # never a download into a file's path


@pytest.mark.parametrize(("device", "says"), [
    ("mps", "device 'mps': t2v runs on cpu or cuda (cuda:N), not on mps"),
    ("gpu", "device 'gpu': not a device name; use cpu, cuda or cuda:N"),
    ("cuda:9", None),  # here: no GPU at all, or fewer than 10
])
def test_a_device_this_machine_lacks_is_one_clear_error_before_any_file_is_read(monkeypatch, device, says):
    import t2v.loader

    def unread(*args, **kwargs):
        raise AssertionError("the model was read before the device was checked")

    monkeypatch.setattr(t2v.loader, "read_source", unread)
    with pytest.raises(UnsupportedDevice) as raised:
        load_pipeline("tiny-random", device=device)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    says = says or (f"device 'cuda:9': this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}" if count
                     else "device 'cuda:9': no CUDA GPU is available on this machine; use device='cpu'")
    assert str(raised.value) == says


def test_corrupt_export_file_names_it(modelscope_dir, tmp_path):
    export = convert(modelscope_dir, tmp_path / "export")
    (export / "vae.safetensors").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match=r"vae\.safetensors"):
        load_pipeline(export)


@pytest.mark.parametrize(("dtype", "message"), [
    ("fp64", r"dtype 'fp64' is not one of float32, fp32, float16, fp16, bfloat16, bf16, fp8"),
    (torch.int8, r"dtype torch.int8 is not a precision the networks compute in; use one of float32"),
    (torch.float8_e4m3fn, r"dtype torch.float8_e4m3fn is not a precision the networks compute in"),
    (["fp16"], r"dtype \['fp16'\] is not one of"),
])
def test_a_dtype_the_networks_cannot_compute_in_is_refused_before_any_file_is_read(tmp_path, dtype, message):
    missing = tmp_path / "nothing-here"  # were the source read first, this would be a WeightsError
    with pytest.raises(InvalidRequest, match=message):
        load_pipeline(missing, dtype=dtype)
    with pytest.raises(InvalidRequest, match=message):
        convert(missing, tmp_path / "out", dtype=dtype)
    with pytest.raises(InvalidRequest, match=r"fp8 is a precision to compute in, not to store"):
        convert(missing, tmp_path / "out", dtype="fp8")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("tiny-random",), {"width": 100}, "model defaults: width=100 must be a multiple of 64 (64, 128, …, 1024)"),
    (("tiny-random",), {"frames": 0}, "model defaults: frames=0 is outside the allowed range 1–64"),
    (("tiny-random",), {"width": "64"}, "model defaults: width='64' must be an integer, got str"),
    (("",), {}, "source '' is empty: name a model folder, or 'tiny-random'"),
    ((None,), {}, "source must be a model folder's path (str or Path) or 'tiny-random', got NoneType None"),
])
def test_a_bad_argument_to_load_pipeline_is_the_callers_invalid_request(monkeypatch, args, kwargs, message):
    # were a WeightsError (the model is fine), the current folder loaded, and a raw TypeError
    import t2v.loader

    monkeypatch.setattr(t2v.loader, "read_source", lambda *a, **k: pytest.fail("files were read first"))
    with pytest.raises(InvalidRequest) as err:
        load_pipeline(*args, **kwargs)
    assert str(err.value) == message and not isinstance(err.value, WeightsError)
