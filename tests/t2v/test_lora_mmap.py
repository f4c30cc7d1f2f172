"""A .bin/.pt file named as a LoRA is memory-mapped where its format allows (torch.save's zip format), so a model of
gigabytes is refused for its keys without its tensors being read into memory."""

import torch

from t2v.weights import lora


def loads(monkeypatch) -> list[dict]:
    """The keyword arguments of each torch.load call, the load itself unchanged."""
    calls, load = [], torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    return calls


def test_a_zip_format_model_named_as_a_lora_is_memory_mapped_for_its_keys(tmp_path, monkeypatch):
    # was torch.load without mmap: `--lora model.pth` read every tensor to say "holds no LoRA weights"
    model = tmp_path / "model.pth"
    torch.save({"conv_in.weight": torch.ones(64, 64), "conv_out.weight": torch.ones(8)}, model)
    calls = loads(monkeypatch)
    assert lora.lora_keys(model) == ["conv_in.weight", "conv_out.weight"]
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


def test_a_legacy_format_file_is_still_read_whole(tmp_path, monkeypatch):
    legacy = tmp_path / "style.bin"
    torch.save({"unet.conv_in.lora_A.weight": torch.ones(2, 4)}, legacy, _use_new_zipfile_serialization=False)
    calls = loads(monkeypatch)
    assert lora.lora_keys(legacy) == ["unet.conv_in.lora_A.weight"]
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": False}]
