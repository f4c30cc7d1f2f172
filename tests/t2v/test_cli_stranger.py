"""`python -m t2v` and its Python API given what a stranger has and types in a first hour: a prompt from a terminal
that is not UTF-8, the prompt again as the negative prompt, a LoRA only the loaded model can refuse, a download or an
export into a folder holding another model, a model folder named one level too high, a configuration edited by hand.
Each is one line naming the value, before any work where it can be known then."""

import pytest

from t2v.cli import build_parser, main, problems
from tests.t2v.helpers import refused

LATIN1_CAFE = "caf\udce9 panda"  # `café panda` from an ISO-8859-1 terminal, as Python decodes argv as UTF-8


@pytest.mark.parametrize(("argv", "line"), [
    (["generate", LATIN1_CAFE], "error: the prompt b'caf\\xe9 panda' is not UTF-8 text (byte 0xe9), so the text "
                                "encoder would read other characters than those typed; type it in UTF-8 (a terminal "
                                "set to UTF-8, e.g. LANG=C.UTF-8)"),
    (["generate", f"--prompt={LATIN1_CAFE}"], "error: the prompt b'caf\\xe9 panda' is not UTF-8 text (byte 0xe9)"),
    (["generate", "a panda", "--negative", "fl\udcf9"], "error: --negative b'fl\\xf9' is not UTF-8 text (byte 0xf9)"),
])
def test_a_prompt_typed_in_another_encoding_than_utf8_is_named_as_its_bytes_before_any_work(
        tmp_path, capsys, no_work, argv, line):
    # it rendered, the text encoder reading a stand-in token where the user typed é
    [said] = refused([*argv, "-o", str(tmp_path / "x.mp4")], capsys)
    assert said.startswith(line)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("prompt", "negative", "shown"), [
    ("a cat", "a cat", "a cat"),
    ("A  cat playing piano", "a cat playing piano ", "'a cat playing piano '"),  # read alike: lower case, one space
])
def test_a_negative_prompt_that_is_the_prompt_itself_is_refused_before_any_work(tmp_path, capsys, no_work, prompt,
                                                                                  negative, shown):
    # it rendered, guidance cancelling out (the bot refuses the same request)
    [said] = refused(["generate", prompt, "--negative", negative, "-o", str(tmp_path / "x.mp4")], capsys)
    assert said == (f"error: --negative {shown}: is the prompt itself, so guidance cancels out (the video renders as "
                    "at --guidance 1); name what to avoid, e.g. --negative \"blurry, low quality\", or leave "
                    "--negative out")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("negative", ["", "  ", "a cat, blurry", "a dog"])
def test_a_negative_prompt_other_than_the_prompt_or_none_is_taken(tmp_path, negative):
    args = build_parser().parse_args(["generate", "a cat", "--negative", negative, "-o", str(tmp_path / "x.mp4")])
    assert problems(args) == []


@pytest.mark.parametrize(("change", "says"), [
    ("shape", "does not fit the model tiny-random: layers whose shapes do not fit their weight: 1 (unet.conv_in: "),
    ("nan", "does not fit the model tiny-random: keys holding NaN or inf values: 1 (unet.conv_in.lora_A.weight)"),
])
def test_a_lora_the_loaded_model_refuses_is_one_line_naming_lora(tmp_path, capsys, change, says):
    # the line began with the file's name alone, unlike every other line about --lora
    import torch
    from safetensors.torch import save_file

    from t2v.config import tiny_config
    from tests.t2v.lora_files import random_lora

    state = random_lora(tiny_config())
    down = state["unet.conv_in.lora_A.weight"]
    state["unet.conv_in.lora_A.weight"] = (down[:, :3].contiguous() if change == "shape" else
                                           torch.full_like(down, float("nan")))
    save_file(state, tmp_path / "style.safetensors")
    lora, out = f"{tmp_path / 'style.safetensors'}:0.5", tmp_path / "x.mp4"
    assert main(["generate", "a cat", "-o", str(out), "--steps", "1", "--lora", lora]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --lora {lora}: ") and says in line
    assert not out.exists()


@pytest.mark.parametrize(("there", "repo", "files", "said"), [
    ("export", "ali-vilab/modelscope-damo-text-to-video-synthesis", ["configuration.json", "VQGAN_autoencoder.pth"],
     "holds a `python -m t2v convert` export (t2v_model.json), which a load reads first, and ali-vilab/modelscope-"
     "damo-text-to-video-synthesis is a ModelScope model (configuration.json): that would be saved beside it and "
     "never loaded; download into a new or empty folder"),
    ("diffusers", "ali-vilab/modelscope-damo-text-to-video-synthesis", ["configuration.json"],
     "holds a diffusers model (model_index.json), and ali-vilab/modelscope-damo-text-to-video-synthesis is a "
     "ModelScope model (configuration.json), which a load reads first: it would load in place of the model there, "
     "the two mixed in one folder; download into a new or empty folder"),
])
def test_a_download_into_a_folder_holding_a_model_of_another_layout_is_refused_before_fetching(
        tmp_path, monkeypatch, capsys, there, repo, files, said):
    # 15 GB came down beside the model there, "downloaded ... to DIR" was said, and DIR loaded as the model it held
    import huggingface_hub
    from huggingface_hub.hf_api import RepoSibling

    def snapshot(**kwargs):
        raise AssertionError("snapshot_download was called")

    info = type("Info", (), {"siblings": [RepoSibling(rfilename=name) for name in [*files, "README.md"]]})()
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", lambda self, repo_id, **kwargs: info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    folder = tmp_path / "weights"
    if there == "export":
        assert main(["convert", "tiny-random", str(folder)]) == 0
    else:
        folder.mkdir()
        (folder / "model_index.json").write_text("{}")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    capsys.readouterr()
    assert main(["download", str(folder), "--repo", repo]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: directory {folder}: {said}"]
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_a_download_into_a_folder_of_the_same_layout_or_none_goes_ahead(tmp_path, monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub.hf_api import RepoSibling

    info = type("Info", (), {"siblings": [RepoSibling(rfilename="model_index.json")]})()
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", lambda self, repo_id, **kwargs: info)
    fetched = []

    def snapshot(repo_id, local_dir):
        fetched.append(local_dir)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    empty, same = tmp_path / "empty", tmp_path / "same"
    empty.mkdir()
    same.mkdir()
    (same / "model_index.json").write_text("{}")  # an earlier download of it, cut short
    for folder in (empty, same):
        assert main(["download", str(folder), "--repo", "cerspense/zeroscope_v2_576w"]) == 1  # no whole model came
    assert fetched == [empty, same]


@pytest.mark.parametrize("marker", ["configuration.json", "model_index.json"])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_convert_into_a_folder_holding_another_model_is_refused_before_the_export_hides_it(
        tmp_path, capsys, no_work, marker, overwrite):
    # the export was written beside it, and `--model FOLDER` loaded the export (tiny-random: noise) from then on
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / marker).write_text("{}")
    kind = {"configuration.json": "a ModelScope model", "model_index.json": "a diffusers model"}[marker]
    assert refused(["convert", "tiny-random", str(folder), *overwrite], capsys) == [
        f"error: destination {folder}: holds {kind} ({marker}), which an export there would hide (its t2v_model.json "
        "is read first); name a new or empty folder"]
    assert [path.name for path in folder.iterdir()] == [marker]


def test_convert_from_python_into_a_folder_holding_another_model_is_refused(tmp_path):
    from t2v.errors import InvalidRequest
    from t2v.loader import convert

    (tmp_path / "configuration.json").write_text("{}")
    with pytest.raises(InvalidRequest, match="holds a ModelScope model"):
        convert("tiny-random", tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["configuration.json"]


def test_a_model_folder_named_one_level_too_high_is_answered_with_the_folders_that_hold_models(tmp_path, capsys):
    # `--model weights` for weights/t2v-fp16 was told to download the official files, 15 GB it already had
    weights = tmp_path / "weights"
    assert main(["convert", "tiny-random", str(weights / "t2v-fp16")]) == 0
    (weights / "notes").mkdir()
    capsys.readouterr()
    [line] = refused(["generate", "a cat", "--model", str(weights), "-o", str(tmp_path / "x.mp4")], capsys)
    assert line.endswith(f"is not a known model layout: expected configuration.json (ModelScope), t2v_model.json "
                         f"(`python -m t2v convert` export) or model_index.json (diffusers); its folder "
                         f"{weights / 't2v-fp16'} holds one: name it instead")
    (weights / "modelscope").mkdir()
    (weights / "modelscope" / "configuration.json").write_text("{}")
    [line] = refused(["convert", str(weights), str(tmp_path / "export")], capsys)
    assert line.endswith(f"its folders {weights / 'modelscope'}, {weights / 't2v-fp16'} hold one each: name one of "
                         "them instead")


def edited_export(tmp_path, edit) -> str:
    """A tiny-random export whose manifest's config was edited by hand (`edit` changes its dict)."""
    import json

    folder = tmp_path / "export"
    assert main(["convert", "tiny-random", str(folder), "--dtype", "float32"]) == 0
    manifest = json.loads((folder / "t2v_model.json").read_text())
    edit(manifest["config"])
    (folder / "t2v_model.json").write_text(json.dumps(manifest))
    return str(folder)


@pytest.mark.parametrize(("edit", "says"), [
    # the model loaded, then "error: frames=0 is outside the allowed range 1–64", naming no file
    (lambda config: config.update(frames=0), "t2v_model.json: frames=0 is outside the allowed range 1–64"),
    # a traceback from inside the UNet's group norm, or (latent_scale) one after the whole render
    (lambda config: config["unet"].update(dim=33), "t2v_model.json describes no network t2v can build (ValueError: "
                                                   "num_channels (33) must be divisible by num_groups (32)); re-run "),
    (lambda config: config["unet"].update(dim_mult=[]), "t2v_model.json describes no network t2v can build "
                                                        "(IndexError: "),
    (lambda config: config.update(latent_scale=None), "t2v_model.json: latent_scale=None must be a positive number "
                                                      "(ModelScope's is 0.18215); re-run `python -m t2v convert`"),
])
def test_an_export_whose_manifest_was_edited_into_nonsense_is_one_line_before_the_load(tmp_path, capsys, monkeypatch,
                                                                                      edit, says):
    import t2v.cli

    export = edited_export(tmp_path, edit)
    capsys.readouterr()
    monkeypatch.setattr(t2v.cli, "load_pipeline", lambda *args, **kwargs: pytest.fail("loaded before refusing"))
    [line] = refused(["generate", "a cat", "--model", export, "-o", str(tmp_path / "x.mp4")], capsys)
    assert line.startswith(f"error: --model {export}: {export}/") and says in line


def test_a_modelscope_max_frames_no_request_may_take_is_named_before_the_load(modelscope_dir, tmp_path, capsys,
                                                                             no_work):
    import json

    folder = tmp_path / "modelscope"
    folder.mkdir()
    for file in modelscope_dir.iterdir():
        (folder / file.name).symlink_to(file)
    config = json.loads((modelscope_dir / "configuration.json").read_text())
    config["model"]["model_args"]["max_frames"] = 0
    (folder / "configuration.json").unlink()
    (folder / "configuration.json").write_text(json.dumps(config))
    assert refused(["generate", "a cat", "--model", str(folder), "-o", str(tmp_path / "x.mp4")], capsys) == [
        f"error: --model {folder}: {folder}/configuration.json (max_frames): frames=0 is outside the allowed range "
        "1–64"]


def test_load_pipeline_names_the_manifest_of_a_default_no_request_may_take_unless_the_call_gives_its_own(tmp_path):
    from t2v import load_pipeline
    from t2v.errors import WeightsError

    export = edited_export(tmp_path, lambda config: config.update(frames=0))
    with pytest.raises(WeightsError, match=r"t2v_model.json: frames=0 is outside the allowed range 1–64"):
        load_pipeline(export)
    assert load_pipeline(export, frames=2).config.frames == 2


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_request_whose_prompt_holds_bytes_that_are_no_text_is_refused_naming_them(field):
    # it rendered, the tokenizer reading a stand-in token for the é of café
    from t2v import GenerationRequest
    from t2v.errors import InvalidRequest

    values = {"prompt": "a panda", field: LATIN1_CAFE}
    with pytest.raises(InvalidRequest, match=rf"^{field} 'caf\\udce9 panda' holds '\\udce9', a lone surrogate, which "
                                             "is no character; decode the text from its bytes"):
        GenerationRequest(**values)
