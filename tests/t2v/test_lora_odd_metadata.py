"""A LoRA whose safetensors header (`lora_adapter_metadata`, the adapters' LoraConfig) holds values peft would not
have written: one LoraError naming the field, its value and what would be right, never a Python TypeError,
AttributeError or re.error from deep in the reader; and a wrong rank in it is one line, not one per layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import save_file

from t2v.config import tiny_config
from t2v.errors import LoraError
from t2v.weights.lora import read_lora
from tests.t2v.lora_files import random_lora

FIX = "save the LoRA again with diffusers' save_lora_weights, or without that header"


def _with_metadata(path: Path, metadata: str) -> Path:
    save_file(random_lora(tiny_config()), str(path), metadata={"lora_adapter_metadata": metadata})
    return path


@pytest.mark.parametrize(("metadata", "says"), [
    ({"unet.r": 2, "unet.lora_alpha": "x"}, 'unet.lora_alpha = "x", not a number'),  # was TypeError: str / int
    ({"unet.r": "four"}, 'unet.r = "four", not a whole number above 0'),
    ({"unet.r": 0}, "unet.r = 0, not a whole number above 0"),
    ({"unet.r": 2, "unet.rank_pattern": ["to_q"]},  # was AttributeError: 'list' object has no attribute 'items'
     'unet.rank_pattern = ["to_q"], not an object of module-name patterns and their values'),
    ({"unet.r": 2, "unet.alpha_pattern": {"[": 3}},  # was re.error: unterminated character set
     "unet.alpha_pattern = {\"[\": 3}, whose pattern '[' is not a regular expression (unterminated character set at "
     "position 0)"),
    ({"unet.r": 2, "unet.rank_pattern": {"to_q": 2.5}}, "unet.rank_pattern = {\"to_q\": 2.5}, whose value for 'to_q' "
                                                        "is 2.5, not a whole number above 0"),
    ({"unet.r": 2, "unet.use_rslora": "yes"}, 'unet.use_rslora = "yes", not true or false'),
])
def test_a_metadata_field_of_the_wrong_kind_is_one_lora_error_naming_it(tmp_path: Path, metadata, says):
    path = _with_metadata(tmp_path / "style.safetensors", json.dumps(metadata))

    with pytest.raises(LoraError) as caught:
        read_lora(path, tiny_config())
    assert str(caught.value) == f"{path}: its lora_adapter_metadata header has {says}; {FIX}"


def test_metadata_that_is_not_a_json_object_is_refused_not_ignored(tmp_path: Path):
    path = _with_metadata(tmp_path / "style.safetensors", "[4, 4]")

    with pytest.raises(LoraError) as caught:
        read_lora(path, tiny_config())
    assert str(caught.value) == (f"{path}: its lora_adapter_metadata header is a JSON list, where diffusers writes an "
                                 f'object such as {{"unet.r": 4, "unet.lora_alpha": 4}}; {FIX}')


def test_a_rank_in_the_metadata_unlike_the_files_is_one_line_however_many_layers(tmp_path: Path):
    path = _with_metadata(tmp_path / "style.safetensors", json.dumps({"unet.r": 8, "unet.lora_alpha": 8}))
    layers = sum(1 for key in random_lora(tiny_config()) if key.startswith("unet.") and key.endswith("lora_A.weight"))

    with pytest.raises(LoraError) as caught:
        read_lora(path, tiny_config())
    message = str(caught.value)
    assert f"layers its metadata does not fit: {layers} (" in message and message.count("in its metadata") == 3
