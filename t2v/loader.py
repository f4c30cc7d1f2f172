"""`load_pipeline(source)`: recognise a model source's layout, build the networks, load them strictly; and `convert`.

Layouts, one reader each in t2v.weights: ModelScope's published directory, diffusers', our safetensors export;
and tiny-random, which needs no files. Default width/height/frames per model: t2v.presets.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
import time
from pathlib import Path

import torch

from t2v import presets, unexpanded
from t2v.config import TINY_RANDOM, ModelConfig, tiny_config
from t2v.errors import InvalidRequest, UnsupportedDevice, WeightsError
from t2v.kernels import fp8
from t2v.networks import build_modules, random_state_dicts
from t2v.pipeline import VideoPipeline
from t2v.precision import check_precision, is_fp8, missing_device, parse_dtype
from t2v.request import MODEL_DEFAULTS
from t2v.weights import export
from t2v.weights.diffusers import AGAIN, COMPONENTS, read_config, read_diffusers, weight_files
from t2v.weights.files import (
    HUB_OWNERS,
    REPO_ID,
    as_meta,
    check_readable,
    check_state_dict,
    download_command,
    hub_repo,
    load_into,
    safetensors_shapes,
    web_address,
    where_from,
)
from t2v.weights.modelscope import modelscope_files, read_modelscope

log = logging.getLogger(__name__)

# the render that calibrates static fp8 scales at load (t2v.kernels.fp8.observing): the model's own size, DDIM steps
# across the whole schedule, two unlike prompts, each with its unconditional half
CALIBRATION_PROMPTS = ("an astronaut riding a horse on the moon, photorealistic",
                       "a watercolor painting of a small boat on a stormy sea at night")
CALIBRATION_STEPS = 10


def assemble(config: ModelConfig, states: dict[str, dict[str, torch.Tensor]], sources: dict[str, str],
             device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None,
             fp8_scaling: str = fp8.DEFAULT_SCALING, fp8_keep: tuple[str, ...] = fp8.KEEP_FP16,
             fp8_convs: bool = fp8.CONVS) -> VideoPipeline:
    """Strictly load each network's state dict, then move it to the device and dtype (fp8: then quantise with
    `fp8_scaling` all but the `fp8_keep` layers, with `fp8_convs` the 3×3 convolutions too (opt-in), and
    calibrate static scales)."""
    device = torch.device(device)
    check_precision(dtype, device)
    quantized, dtype = is_fp8(dtype), parse_dtype(dtype, device)
    modules = build_modules(config)
    for name, module in modules.items():
        load_into(module, states[name], sources[name])
        module.to(device=device, dtype=dtype).requires_grad_(False)
    if quantized:
        fp8.quantize_unet(modules["unet"], fp8_scaling, fp8_keep, fp8_convs)
    pipe = VideoPipeline(config, modules["unet"], modules["vae"], modules["text_encoder"], device, dtype)
    if quantized and (fp8_scaling == "static" or fp8_convs):
        calibrate_fp8(pipe)
    return pipe


def calibrate_fp8(pipe: VideoPipeline) -> None:
    """Fix the static fp8 layers' input scales from one render of CALIBRATION_PROMPTS at the model's size (for
    ModelScope's 16×256², 2–5 s at load on an H100: the eager network with per-call scales; larger models' sizes take
    longer). The scales are what every later render, of any size, quantises with."""
    started = time.perf_counter()
    requests = [pipe.request(prompt, seed=seed, steps=CALIBRATION_STEPS)
                for seed, prompt in enumerate(CALIBRATION_PROMPTS)]
    try:
        with fp8.observing(pipe.unet) as layers:
            pipe.generate_batch(requests)
    except Exception as error:
        raise RuntimeError(f"fp8: the calibration render at load ({len(requests)} videos of {CALIBRATION_STEPS} steps "
                           f"at the model's size) failed: {error}; load with another dtype to go without it") from error
    log.info("fp8: %d static scales calibrated in %.2f s", len(layers), time.perf_counter() - started)
    log.warning("fp8: most of the UNet transformers' Linear layers compute in e4m3, ≈ 6% faster than float16 on "
                "an H100 and ≈ 30 times further from float32 (docs/benchmarks.md); what that does to this model's "
                "videos is not known")


MODEL_FOLDER = ("a ModelScope download's configuration.json, a diffusers folder's model_index.json or a `python -m t2v "
                "convert` export's t2v_model.json, beside the weights")  # what a model folder holds, as messages say


def _not_there(source: str) -> str:
    """What to do about a model source that is no folder: name the folder, not a file in it; else download the model
    first (a Hub id: into a folder). A relative path is shown as the absolute one that was looked at."""
    path = Path(source)
    looked_at = "" if path.is_absolute() else f" ({path.absolute()})"
    if path.exists():
        return (f"model source {source!r}{looked_at} is a file; load the folder that holds the model's files "
                f"({MODEL_FOLDER})")
    owner = source.partition("/")[0]
    if (repo := hub_repo(source)) is not None:  # a repo's page, copied from the browser
        return (f"model source {source!r} is the web address of the Hugging Face repo {repo}, and t2v loads folders; "
                f"{download_first(repo)}")
    if web_address(source):
        return (f"model source {source!r} is a web address, and t2v loads folders on this machine; download the model "
                "into a folder first, and name that folder")
    if owner in HUB_OWNERS and re.fullmatch(REPO_ID, source) and not Path(owner).exists():
        return (f"model source {source!r} is neither '{TINY_RANDOM}' nor an existing directory: it is a Hugging Face "
                f"repo id, and t2v loads folders; {download_first(source)}")
    return (f"model source {source!r}{looked_at} is neither '{TINY_RANDOM}' nor an existing directory; download the "
            f"official model into it first with `python -m t2v download {source}` (for another Hugging Face repo, add "
            "--repo OWNER/NAME)")


def download_first(repo: str) -> str:
    """How to get the Hugging Face repo `repo` (OWNER/NAME) into a folder t2v loads, and load it."""
    return f"download it first with `{download_command(repo)}`, then load weights/{repo.partition('/')[2]}"


# the file that marks each layout, in the order detect_layout looks for them (the first found is the one loaded)
MARKERS = {export.MANIFEST: "a `python -m t2v convert` export", "configuration.json": "a ModelScope model",
           "model_index.json": "a diffusers model"}


def hidden_by_export(destination: str | Path) -> str | None:
    """Why an export may not be written into `destination`: it holds a model of another layout, which the export's
    manifest, read first, would hide (a `--model` of that folder would load the export from then on)."""
    others = [marker for marker in MARKERS if marker != export.MANIFEST]
    try:
        there = next((marker for marker in others if (Path(destination) / marker).is_file()), None)
    except OSError:  # a folder this user may not enter: the writability check says so
        return None
    if there is None:
        return None
    return (f"holds {MARKERS[there]} ({there}), which an export there would hide (its {export.MANIFEST} is read "
            "first); name a new or empty folder")


def detect_layout(source: str | Path) -> str:
    """'tiny-random', 'modelscope', 'export' or 'diffusers'; anything else raises naming what was looked for."""
    if str(source) == TINY_RANDOM:
        return TINY_RANDOM
    path = Path(source)
    if not path.is_dir():
        raise WeightsError(_not_there(str(source)))
    if not os.access(path, os.R_OK | os.X_OK):
        raise WeightsError.permission_denied(path)
    if (path / export.MANIFEST).is_file():
        return "export"
    if (path / "configuration.json").is_file():
        return "modelscope"
    if (path / "model_index.json").is_file():
        return "diffusers"
    raise WeightsError(f"{path} is not a known model layout: expected configuration.json (ModelScope), "
                       f"{export.MANIFEST} (`python -m t2v convert` export) or model_index.json (diffusers); "
                       f"{_models_inside(path) or where_from(path)}")


def _models_inside(path: Path) -> str | None:
    """Where a folder that holds no model has models one level down (`weights` for `weights/modelscope`): what to name
    instead, rather than a download of what is there already."""
    try:
        found = sorted((folder for folder in path.iterdir() if folder.is_dir()
                        and any((folder / marker).is_file() for marker in MARKERS)), key=lambda folder: folder.name)
    except OSError:  # a folder this user may not list: nothing to go on
        return None
    if not found:
        return None
    if len(found) == 1:
        return f"its folder {found[0]} holds one: name it instead"
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return f"its folders {', '.join(map(str, found[:3]))}{more} hold one each: name one of them instead"


def check_source(source: str | Path, half: bool | None = None) -> list[Path]:
    """The weight files of `source` that a load reads (`half`: in half precision, which picks a diffusers folder's
    *.fp16.* files; None: the files of either); WeightsError unless it is a known layout whose configuration and
    t2v_defaults.json read and whose weight files are all there, readable and not empty: what can be known in a
    second, before minutes of loading (whether each file is whole: t2v.preflight.weights_file; whether its keys fit:
    check_keys)."""
    layout = detect_layout(source)
    if layout == TINY_RANDOM:
        return []
    path = Path(source)
    if layout == "export":
        files = list(export.export_files(path)[1].values())
    elif layout == "modelscope":
        files = list(modelscope_files(path)[1].values())
    else:
        read_config(path)
        files = list(dict.fromkeys(file for prefer in _precisions(half) for part in COMPONENTS
                                   for file in weight_files(path / part, part, prefer)))
    presets.read_defaults_file(path)
    missing = export.REDO if layout == "export" else where_from(path)  # an export's come from convert, not the Hub
    empty = {"export": export.REDO, "diffusers": AGAIN.format(root=path)}.get(layout, where_from(path))
    for file in files:
        check_readable(file, missing)
        if file.stat().st_size == 0:
            raise WeightsError(f"{file} is empty; {empty}")
    return files


def _precisions(half: bool | None) -> tuple[bool, ...]:
    """The `prefer_half` values a load in `half` precision may take (None: unknown, both)."""
    return (False, True) if half is None else (half,)


def check_keys(source: str | Path, half: bool | None = None) -> None:
    """WeightsError unless each network's files hold exactly the keys and shapes it wants, told without reading their
    data (safetensors headers; torch's .pth and .bin pickles memory-mapped): seconds, not the minutes of a load;
    files of whole files only (check_source, weights_file)."""
    layout = detect_layout(source)
    if layout == TINY_RANDOM:
        return
    path = Path(source)
    if layout == "modelscope":
        config, states, sources = read_modelscope(path)
        hint = where_from(path)
        found = [({name: as_meta(state, sources[name], hint) for name, state in states.items()}, sources)]
    elif layout == "export":
        config, files = export.export_files(path)
        hint = export.REDO
        found = [({name: safetensors_shapes(file, hint) for name, file in files.items()},
                  {name: str(file) for name, file in files.items()})]
    else:
        hint = AGAIN.format(root=path)
        found = [read_diffusers(path, prefer_half=prefer, headers=True)[1:] for prefer in _precisions(half)]
        config = read_config(path)
    where = config_file(path, layout)
    check_model_defaults(presets.for_directory(config, path, by_name=layout != "export"),
                         f"{where} (max_frames)" if layout == "modelscope" else where)
    modules = _built(config, where, hint)
    for states, sources in found:
        for name, state in states.items():
            check_state_dict(state, modules[name], sources[name], hint)


def config_file(path: Path, layout: str) -> Path:
    """The file a layout's configuration (its networks' numbers, its default size and length) is read from."""
    return {"modelscope": path / "configuration.json", "export": path / export.MANIFEST}.get(
        layout, path / "unet" / "config.json")


def check_model_defaults(config: ModelConfig, where: str | Path) -> None:
    """WeightsError naming `where` for a default size or length no request may take (`max_frames: 0` in a
    configuration edited by hand): said before the load, not as a request refused once the model has loaded."""
    presets.check_defaults({name: getattr(config, name) for name in MODEL_DEFAULTS}, str(where))


def _built(config: ModelConfig, where: Path, hint: str) -> dict[str, torch.nn.Module]:
    """The networks `config` describes, on the meta device; WeightsError naming `where` for numbers no network can be
    built of (a width the group norms cannot divide, no levels) or a latent scale that is no positive number, rather
    than a traceback from inside the network or after the render."""
    scale = config.latent_scale
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < scale < math.inf:
        raise WeightsError(f"{where}: latent_scale={scale!r} must be a positive number (ModelScope's is "
                           f"{ModelConfig.latent_scale}); {hint}")
    try:
        return build_modules(config)
    except (ValueError, TypeError, IndexError, ZeroDivisionError, RuntimeError) as exc:
        raise WeightsError(f"{where} describes no network t2v can build ({type(exc).__name__}: {exc}); "
                           f"{hint}") from exc


def read_source(source: str | Path, device: str = "cpu", prefer_half: bool = False):
    """(config with its defaults, state dicts, file names) for any supported source; `prefer_half` picks diffusers'
    fp16 files."""
    layout = detect_layout(source)
    if layout == TINY_RANDOM:
        config = tiny_config()
        return config, random_state_dicts(config), {name: f"{TINY_RANDOM}:{name}" for name in export.FILES}
    path = Path(source)
    if layout == "export":  # its manifest holds the defaults resolved when it was written
        config, states, sources = export.read_export(path, device)
        return presets.for_directory(config, path, by_name=False), states, sources
    config, states, sources = read_modelscope(path) if layout == "modelscope" else read_diffusers(path, device,
                                                                                                  prefer_half)
    return presets.for_directory(config, path), states, sources


def check_source_name(source: object) -> None:
    """InvalidRequest unless `source` names a model: a non-empty str or a Path ("" would be the current folder)."""
    if not isinstance(source, str | os.PathLike):
        raise InvalidRequest(f"source must be a model folder's path (str or Path) or {TINY_RANDOM!r}, got "
                             f"{type(source).__name__} {source!r:.60}")
    if isinstance(source, str) and not source.strip():
        raise InvalidRequest(f"source {source!r} is empty: name a model folder, or {TINY_RANDOM!r}")
    check_home("source", source)


def check_home(name: str, path: str | os.PathLike[str]) -> None:
    """InvalidRequest for a path with a ~ or $NAME nothing expanded (Python does not: it would be a folder named ~
    here; t2v.unexpanded), before any file is read or written."""
    problem = unexpanded.problem(os.fspath(path))
    if problem is not None:
        raise InvalidRequest(f"{name} {os.fspath(path)!r}: {problem}")


def load_pipeline(source: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None,
                  width: int | None = None, height: int | None = None, frames: int | None = None) -> VideoPipeline:
    """Load a ModelScope or diffusers directory, a `t2v convert` export, or 'tiny-random' onto `device`.

    width/height/frames override the model's default request size (t2v.presets lists where defaults come from).
    A source that is no path (None, "") and a bad width/height/frames are InvalidRequest, a device this machine
    lacks UnsupportedDevice, before any file is read.
    """
    check_source_name(source)
    presets.check_overrides(width, height, frames)  # a bad size is the caller's, said before any file is read
    problem = missing_device(device)
    if problem is not None:
        raise UnsupportedDevice(f"device {str(device)!r}: {problem}")
    check_precision(dtype, device)
    half = parse_dtype(dtype, torch.device(device)) != torch.float32
    config, states, sources = read_source(source, str(device), prefer_half=half)
    config = presets.with_overrides(config, width, height, frames)
    if str(source) != TINY_RANDOM:
        check_model_defaults(config, config_file(Path(source), detect_layout(source)))
    pipe = assemble(config, states, sources, device, dtype)
    log.info("loaded %s (%s) on %s as %s", source, config.name, pipe.device, pipe.dtype)
    if config.is_random:
        log.warning("model %s has random weights: its output is noise", source)
    return pipe


def convert(source: str | Path, destination: str | Path, dtype: torch.dtype | str | None = "float16",
            width: int | None = None, height: int | None = None, frames: int | None = None) -> Path:
    """Write any supported source as our export: a manifest (config and defaults) and one safetensors per network."""
    if is_fp8(dtype):
        raise InvalidRequest(f"dtype {dtype}: fp8 is a precision to compute in, not to store; convert to float16 and "
                             "load that with dtype fp8")
    check_source_name(source)
    check_home("destination", destination)
    if Path(destination) == Path(TINY_RANDOM):  # load_pipeline would load the preset, never this export
        raise InvalidRequest(f"destination {str(destination)!r}: an export of that name could not be loaded, since "
                             f"{TINY_RANDOM!r} is the random-weight preset; name another folder, e.g. "
                             f"weights/{TINY_RANDOM}")
    hidden = hidden_by_export(destination)
    if hidden is not None:
        raise InvalidRequest(f"destination {os.fspath(destination)!r}: {hidden}")
    presets.check_overrides(width, height, frames)
    half = dtype is not None and parse_dtype(dtype, torch.device("cpu")) != torch.float32
    config, states, sources = read_source(source, prefer_half=half)
    config = presets.with_overrides(config, width, height, frames)
    for name, module in build_modules(config).items():
        check_state_dict(states[name], module, sources[name])
    cast = None if dtype is None else parse_dtype(dtype, torch.device("cpu"))
    out = export.write_export(config, states, Path(destination), cast, str(source))
    log.info("converted %s to %s (%s)", source, out, cast)
    return out
