"""Per-model defaults (known fine-tunes, t2v_defaults.json, overrides) and aspect-ratio sizes."""

import dataclasses
import json

import pytest

from t2v import WeightsError
from t2v.config import ModelConfig
from t2v.presets import ASPECTS, DEFAULTS_FILE, aspect_sizes, for_directory, known_model, with_overrides


def _model(width: int, height: int) -> ModelConfig:
    return dataclasses.replace(ModelConfig(), width=width, height=height)


@pytest.mark.parametrize(("width", "height"), [(256, 256), (576, 320), (1024, 576), (448, 256)])
def test_aspect_sizes_are_multiples_of_64_with_the_right_ratio(width, height):
    sizes = aspect_sizes(_model(width, height))
    assert sizes.keys() == ASPECTS.keys()
    for name, (w, h) in sizes.items():
        a, b = ASPECTS[name]
        assert w % 64 == 0 and h % 64 == 0 and min(w, h) >= 64 and max(w, h) <= 1024
        assert abs((w / h) / (a / b) - 1) <= 0.13, name  # as close as 64-pixel steps allow
        assert min(w, h) >= min(width, height)  # never below the native short side
    assert sizes["1:1"][0] == sizes["1:1"][1]
    assert sizes["16:9"] == sizes["9:16"][::-1] and sizes["4:3"] == sizes["3:4"][::-1]


def test_aspect_sizes_on_the_published_models():
    assert aspect_sizes(_model(256, 256))["16:9"] == (448, 256)
    assert aspect_sizes(_model(256, 256))["1:1"] == (256, 256)
    assert aspect_sizes(_model(576, 320))["16:9"] == (576, 320)
    assert aspect_sizes(_model(576, 320))["4:3"] == (512, 384)
    assert aspect_sizes(_model(1024, 576))["16:9"] == (1024, 576)


def test_fine_tunes_are_recognised_in_hugging_face_cache_paths(tmp_path):
    snapshot = tmp_path / "models--cerspense--zeroscope_v2_XL" / "snapshots" / "6a3b0f"
    snapshot.mkdir(parents=True)
    assert known_model(snapshot) == ("zeroscope_v2_xl", (1024, 576, 24))
    assert known_model(tmp_path) is None
    config = for_directory(ModelConfig(), snapshot)
    assert (config.width, config.height, config.frames, config.name) == (1024, 576, 24, "zeroscope_v2_xl")
    assert for_directory(ModelConfig(), snapshot, by_name=False) == ModelConfig()  # exports keep their manifest


def test_a_defaults_file_beats_the_name_and_explicit_values_beat_both(tmp_path):
    root = tmp_path / "zeroscope_v2_576w"
    root.mkdir()
    (root / DEFAULTS_FILE).write_text(json.dumps({"frames": 30, "name": "my-zeroscope"}))
    config = for_directory(ModelConfig(), root)
    assert (config.width, config.height, config.frames, config.name) == (576, 320, 30, "my-zeroscope")
    config = with_overrides(config, frames=16, height=256)
    assert (config.width, config.height, config.frames) == (576, 256, 16)


@pytest.mark.parametrize(("content", "message"), [
    ({"width": 100}, r"width=100 must be a multiple of 64"),
    ({"frames": 65}, r"frames=65 is outside the allowed range 1–64"),
    ({"fps": 8}, r"unknown keys \['fps'\]; allowed are width, height, frames, name"),
    ([576, 320], r"must hold a JSON object"),
])
def test_a_bad_defaults_file_is_named_with_the_bad_value(tmp_path, content, message):
    (tmp_path / DEFAULTS_FILE).write_text(json.dumps(content))
    with pytest.raises(WeightsError, match=message) as err:
        for_directory(ModelConfig(), tmp_path)
    assert DEFAULTS_FILE in str(err.value)
