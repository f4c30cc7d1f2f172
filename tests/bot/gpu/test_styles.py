"""The styles file: read and checked before any model loads (one line per problem; an optional style's problem is a
warning), each style loaded on the worker (a misfit stops the start unless optional), and applied only when the
style changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import SettingsError, StyleGone, failure_reason
from bot.gpu.executor import GPUExecutor
from bot.gpu.source import ModelSource
from bot.gpu.styles import Style, load_styles, read_styles, styled, use_style
from bot.jobs.queue import FairQueue
from bot.jobs.service import VideoService
from t2v.config import TINY_RANDOM
from tests.bot.conftest import tiny_pipeline
from tests.bot.helpers import STYLES, Events, StyledPipeline, spec, write_lora


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with a LoRA for the tiny model (clay.safetensors) and a file that is not a LoRA."""
    write_lora(tmp_path / "clay.safetensors", tiny_pipeline().config)
    (tmp_path / "notes.safetensors").write_text("not a LoRA")
    return tmp_path


def styles_file(folder: Path, text: str) -> Path:
    path = folder / "styles.toml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        read_styles(path)
    return caught.value.lines


def test_a_styles_file_gives_each_style_with_its_file_relative_to_it(folder: Path):
    path = styles_file(folder, '[claymation]\nfile = "clay.safetensors"\nscale = 0.8\nprefix = "clay, "\n'
                               'suffix = ", stop motion"\ndescription = "Clay figures"\n\n'
                               '[plain]\nfile = "clay.safetensors"\n')
    catalog = read_styles(path)

    assert catalog.styles == (Style("claymation", folder / "clay.safetensors", 0.8, "clay, ", ", stop motion",
                                    "Clay figures"), Style("plain", folder / "clay.safetensors"))
    assert catalog.styles[0].prompt("a cat") == "clay, a cat, stop motion" and not catalog.skipped
    assert read_styles(None).styles == ()


@pytest.mark.parametrize(("text", "says"), [
    ('[Clay]\nfile = "clay.safetensors"', "the style name 'Clay' is not 1–32 lower-case letters"),
    ('[none]\nfile = "clay.safetensors"', "'none' is taken"),
    ('[clay]\nfile = "clay.safetensors"\nscale = 3', "[clay]: scale = 3 is not a number above 0 and at most 2"),
    ('[clay]\nfile = "clay.safetensors"\nstrength = 1', "[clay]: unknown key strength; a style has description, file"),
    ('[clay]\nscale = 1.0', "[clay]: file = None: name the LoRA's .safetensors file"),
    ('[clay]\nfile = "clay.safetensors"\noptional = "yes"', "[clay]: optional = 'yes' is not true or false"),
    ('[clay\nfile = 1', "not valid TOML"),
])
def test_each_bad_value_is_one_line_naming_it_and_what_would_be_right(folder: Path, text: str, says: str):
    [line] = problems(styles_file(folder, text))
    assert line.startswith(f"STYLES_FILE={folder / 'styles.toml'}") and says in line


def test_a_missing_or_not_a_lora_file_stops_the_start_in_one_line_each_unless_optional(folder: Path):
    path = styles_file(folder, '[gone]\nfile = "gone.safetensors"\n\n[notes]\nfile = "notes.safetensors"\n\n'
                               '[maybe]\nfile = "gone.safetensors"\noptional = true\n\n'
                               '[clay]\nfile = "clay.safetensors"')
    gone, notes = problems(path)
    assert gone.startswith(f"STYLES_FILE={path} [gone] file {folder / 'gone.safetensors'}: ")
    assert notes.startswith(f"STYLES_FILE={path} [notes] file {folder / 'notes.safetensors'}: ")
    assert "is not a readable safetensors file" in notes
    assert all(line.endswith("or mark the style optional = true to start without it") for line in (gone, notes))

    styles_file(folder, '[maybe]\nfile = "gone.safetensors"\noptional = true\n\n[clay]\nfile = "clay.safetensors"')
    catalog = read_styles(path)
    assert [style.name for style in catalog.styles] == ["clay"] and list(catalog.skipped) == ["maybe"]


def test_with_ray_the_files_are_left_to_the_workers_which_skip_an_optional_one_they_cannot_read(folder: Path,
                                                                                                 caplog):
    path = styles_file(folder, '[maybe]\nfile = "elsewhere.safetensors"\noptional = true\n')
    [style] = read_styles(path, check_files=False).styles  # the LoRA files are on the workers' hosts
    assert load_styles(tiny_pipeline(), (style,)) == {}
    assert f"STYLES_FILE [maybe] file {folder / 'elsewhere.safetensors'}: " in caplog.text and "missing" in caplog.text


def test_the_styles_file_itself_missing_is_one_line(tmp_path: Path):
    [line] = problems(tmp_path / "styles.toml")
    assert line.startswith(f"STYLES_FILE={tmp_path / 'styles.toml'}: cannot read it (No such file or directory)")


@pytest.mark.parametrize(("file", "says"), [
    ("clay.safetensors", "(a NUL byte at offset {nul}: a binary file, or UTF-16)"),  # the LoRA, not the TOML
    ("utf16.toml", "(it is UTF-16)"),  # Notepad's "Unicode"
    ("latin1.toml", "(byte 0xe2 at offset 49 is not UTF-8)"),
])
def test_a_styles_file_that_is_not_utf_8_text_is_one_line_saying_so(folder: Path, file: str, says: str):
    text = '[clay]\nfile = "clay.safetensors"\ndescription = "Pâte à modeler"\n'
    (folder / "utf16.toml").write_text(text, encoding="utf-16")
    (folder / "latin1.toml").write_text(text, encoding="latin-1")
    [line] = problems(folder / file)
    says = says.format(nul=(folder / file).read_bytes().find(b"\x00"))  # in a .safetensors' header length
    assert line == (f"STYLES_FILE={folder / file}: not a UTF-8 TOML file {says}; set STYLES_FILE to the TOML file "
                    "that lists the styles (not a LoRA's .safetensors), saved as UTF-8")


def test_a_styles_file_starting_with_a_byte_order_mark_is_read(folder: Path):
    path = folder / "styles.toml"
    path.write_text('[clay]\nfile = "clay.safetensors"\n', encoding="utf-8-sig")
    assert [style.name for style in read_styles(path).styles] == ["clay"]


def test_a_worker_loads_each_style_and_a_misfit_stops_the_start_unless_it_is_optional(folder: Path, caplog):
    misfit = write_lora(folder / "other.safetensors", tiny_pipeline().config)
    from safetensors.torch import load_file, save_file  # a LoRA for a layer this model does not have

    state = load_file(misfit)
    state["unet.no_such_block.to_q.lora_A.weight"] = next(iter(state.values())).clone()
    save_file(state, misfit)
    source = ModelSource(TINY_RANDOM, styles=(Style("clay", folder / "clay.safetensors"),
                                              Style("other", misfit, optional=True)))
    pipeline = tiny_pipeline()
    try:
        models = source.prepare(pipeline, "cpu")
        assert list(models.styles) == ["clay"] and "style other is left out" in caplog.text
        with pytest.raises(SettingsError) as caught:
            load_styles(pipeline, (Style("other", misfit),))
    finally:
        for name in list(pipeline.styles.loaded):
            pipeline.styles.unload(name)
    [line] = caught.value.lines
    assert line.startswith(f"STYLES_FILE [other] file {misfit}: ") and "no_such_block" in line


async def test_a_required_style_that_does_not_fit_stops_the_service_start(database, gate):
    def worker(device: str):
        raise SettingsError(["STYLES_FILE [clay] file /x does not fit the model: …"])

    service = VideoService(database.repo(), gate, FairQueue(3, 10), GPUExecutor(["cpu"], worker), Events())
    with pytest.raises(SettingsError) as caught:
        await service.start()
    assert caught.value.lines == ["STYLES_FILE [clay] file /x does not fit the model: …"]
    await service.stop()


def test_set_lora_is_called_only_when_the_style_changes_and_the_prompt_gets_the_styles_words():
    pipeline = StyledPipeline()
    for name in ("claymation", "claymation", None, None, "watercolor", "claymation"):
        style = use_style(pipeline, STYLES, name)
        assert style is (None if name is None else STYLES[name])
    assert pipeline.switches == [("claymation", 0.8), (None, 1.0), ("watercolor", 1.0), ("claymation", 0.8)]

    request = spec("a cat").request
    assert styled(request, STYLES["claymation"]).prompt == "claymation style, a cat, stop motion"
    assert styled(request, None) is request
    with pytest.raises(StyleGone, match="no style 'sepia' is loaded on this worker") as gone:
        use_style(pipeline, STYLES, "sepia")
    assert failure_reason(gone.value) == "its style is no longer offered: run /video again with another style, or none"


def test_a_real_pipeline_fuses_the_style_once_and_takes_it_off_again(folder: Path):
    pipeline = tiny_pipeline()
    style = Style("clay", folder / "clay.safetensors", 0.5)
    try:
        load_styles(pipeline, (style,))
        use_style(pipeline, {"clay": style}, "clay")
        assert (pipeline.styles.active.name, pipeline.styles.active.scale) == ("clay", 0.5)
    finally:
        use_style(pipeline, {"clay": style}, None)
        pipeline.styles.unload("clay")
    assert pipeline.styles.active is None


def test_a_style_whose_reading_fails_midway_is_one_line_not_a_traceback(folder: Path, monkeypatch):
    """load_lora reading a file on a network share that went away raised OSError, which only WeightsError was caught
    for: the start stopped with a traceback."""
    pipeline = tiny_pipeline()

    def failing(path: Path, name: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(pipeline, "load_lora", failing)
    with pytest.raises(SettingsError) as caught:
        load_styles(pipeline, (Style("clay", folder / "clay.safetensors"),))
    assert caught.value.lines == [f"STYLES_FILE [clay] file {folder / 'clay.safetensors'}: reading it failed (Input/"
                                  "output error); fix the file, or mark the style optional = true to start without it"]
    assert load_styles(pipeline, (Style("clay", folder / "clay.safetensors", optional=True),)) == {}
