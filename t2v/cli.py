"""Command line: `python -m t2v generate|convert|download|bench`.

Every command first checks all it can (t2v.preflight and the request's own rules): each bad value is one line
on stderr naming the option, the value and what would be right, and the exit status is 2, before any model is
loaded or any file written. argparse's own errors are one line with status 2 too. Ctrl-C at any point, the checks
included, is one line too (`interrupted: nothing was written` before any work), exit status 130; once generate's
video is written whole, Ctrl-C changes nothing: exit status 0 (t2v/__main__.py ignores it during shutdown).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.metadata
import importlib.util
import itertools
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import torch
from tqdm import tqdm

from t2v import preflight
from t2v.bench import KERNEL_CHECKS
from t2v.bench.measure import DEFAULT_CONFIGS, WORK
from t2v.config import LORA_SCALE_RANGE, TINY_RANDOM, ModelConfig, SamplerDefaults
from t2v.download import download
from t2v.errors import DownloadError, InvalidRequest, NonFiniteOutput, T2VError, WeightsError, WriteError
from t2v.kernels import fp8
from t2v.loader import convert, load_pipeline
from t2v.request import LIMITS, GenerationRequest, check_value, empty_prompt, value_range
from t2v.video import encode_mp4, write_mp4
from t2v.weights import export
from t2v.weights.files import OFFICIAL_REPO, REPO_ID, REPO_RULES

log = logging.getLogger(__name__)

DEFAULTS = SamplerDefaults()
DEFAULT_OUTPUT = Path("video.mp4")
REQUEST_OPTIONS = ("seed", "steps", "guidance", "frames", "width", "height", "fps", "sampler")  # → request fields


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block), exit status 2; options are spelled out in full (an
    abbreviation of one would silently stand for it), and one that is not there is answered with the closest that
    is (`--stpes`: did you mean --steps?); a value starting with '-' that argparse took for an option is named with
    how to write it (`--negative=-blurry`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)
        self._given: list[str] = []  # the arguments this parser was handed, for error messages

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self._plain(message)}\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _plain(self, message: str) -> str:
        """argparse's message, or one that names what was typed and what would be right where argparse's does not:
        no command, or a value starting with '-' (`--guidance -inf`) taken for an option."""
        if message == "the following arguments are required: command":
            return f"no command given; use one of {', '.join(self._commands())} (python -m t2v COMMAND --help)"
        missing = re.fullmatch(r"argument (\S+): expected one argument", message)
        names = missing[1].split("/") if missing else []
        for option, value in itertools.pairwise(self._given):
            if option in names and value.startswith("-") and not value.startswith("--") and (
                    value not in self._option_string_actions):
                return f"{names[-1]} {value}: a value that starts with '-' is written {names[-1]}={value}"
        return message

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._commands().get(getattr(parsed, "command", None) or "")
            known = [*self._option_string_actions, *(command._option_string_actions if command is not None else ())]
            self.error(_unrecognized(extras, known, getattr(parsed, "prompt", None)))
        return parsed

    def _commands(self) -> dict[str, argparse.ArgumentParser]:
        subparsers = [action for action in self._actions if isinstance(action, argparse._SubParsersAction)]
        return dict(subparsers[0].choices) if subparsers else {}


def _version() -> str:
    """The installed project's version (a checkout run without installing has none)."""
    try:
        return importlib.metadata.version("videobot")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _repo(value: str) -> str:
    """A Hugging Face repo id: owner/name, by the Hub's rules (a `../..` would reach the Hub and come back as its own
    message, which names no option)."""
    if not re.fullmatch(REPO_ID, value.strip()):
        raise argparse.ArgumentTypeError(f"{value!r} is not a Hugging Face repo id; write it as owner/name in "
                                         f"{REPO_RULES}, e.g. {OFFICIAL_REPO}")
    return value.strip()


class _Int(int):
    """An int option's value that remembers how it was typed, for the line that names it (`--steps 07`)."""

    typed: str


class _Float(float):
    """A float option's value that remembers how it was typed (`--guidance 0`, not 0.0)."""

    typed: str


_DIGITS = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() takes 1_0 and Arabic-Indic digits too
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def _number(name: str, kind: type[int] | type[float] = int,
            limits: tuple[float, float | None] | None = None) -> Callable[[str], int | float]:
    """The type of every numeric option: its value (remembering how it was typed), or one line naming what was typed
    and what range is right (`--steps 1e3`: argparse alone says "invalid int value"). `limits` (low, high or None
    for none) default to the request field `name`'s."""
    low, high = value_range(name) if limits is None else limits
    span = f"from {low} to {high}" if high is not None else f"of {low} or more"

    def read(value: str) -> int | float:
        integer = kind is int
        if not (_DIGITS if integer else _DECIMAL).fullmatch(value.strip()):
            what = "a whole number (digits 0-9 only)" if integer else "a number"
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}; write one {span}")
        number = _Int(value) if integer else _Float(value)
        number.typed = value.strip()
        return number
    return read


def _as_typed(value: Any) -> Any:
    """A value as the user typed it, where _number read it."""
    return getattr(value, "typed", value)


def _plain(value: Any) -> Any:
    """A _number value as the plain int or float it stands for."""
    return int(value) if isinstance(value, _Int) else float(value) if isinstance(value, _Float) else value


def _path(value: str) -> Path:
    """A path option's value; an empty one (`-o ""`) would otherwise stand for the current folder."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty: name a path")
    problem = preflight.path_length(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    problem = preflight.home_unexpanded(value) or preflight.unreachable(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{value}: {problem}")
    return Path(value)


def _typed_path(value: str) -> str:
    """A path option's value as typed, after _path's checks: a slash at its end, which Path drops, is kept."""
    _path(value)
    return value


def _unrecognized(extras: list[str], known: list[str], prompt: str | None) -> str:
    """One line for arguments no option takes: each misspelt option with its closest real one, and words that
    belong to an unquoted prompt."""
    options = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-")]
    if options:
        guesses = {option: difflib.get_close_matches(option, known, n=1, cutoff=0.6) for option in options}
        def unknown(option: str) -> str:  # a word after one dash, and no prompt yet: perhaps the prompt itself
            if "--prompt" in known and prompt is None and not option.startswith("--"):
                return f"no such option (a prompt that starts with '-' is given as --prompt=\"{option}\")"
            return "no such option"

        said = "; ".join(f"{option}: did you mean {guess[0]}?" if guess else f"{option}: {unknown(option)}"
                         for option, guess in guesses.items())
        return f"unrecognized option{'s' if len(options) > 1 else ''}: {said} (see --help)"
    words = " ".join(extras)
    if prompt is not None:  # generate's prompt, its first word taken and the others left over
        return f"unrecognized arguments: {words}; put a prompt of several words in quotes: \"{prompt} {words}\""
    return f"unrecognized arguments: {words}"


def _generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate one video from a prompt")
    p.add_argument("prompt", nargs="?", help='what to show, e.g. "A panda eating bamboo on a rock."')
    p.add_argument("--prompt", dest="prompt_option", default=None, metavar="PROMPT",
                   help="the prompt as an option instead (as other text-to-video scripts take it)")
    p.add_argument("-o", "--output", type=_typed_path, default=None,
                   help=f"MP4 file to write (default: {DEFAULT_OUTPUT}, or the first free {DEFAULT_OUTPUT.stem}-N.mp4)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the --output file if it exists (else it is refused; a file that appears there while "
                        "rendering is kept, and the video takes the next free name-N.mp4)")
    p.add_argument("--model", default=TINY_RANDOM,
                   help=f"ModelScope or diffusers directory, `t2v convert` export, or {TINY_RANDOM} (default; noise)")
    p.add_argument("--negative", default="", help="negative prompt (replaces the empty unconditional prompt)")
    p.add_argument("--seed", type=_number("seed"), default=None, help="random seed (default: a new one, printed)")
    p.add_argument("--steps", type=_number("steps"), default=None,
                   help=f"sampling steps, 1–150 (default {DEFAULTS.steps})")
    p.add_argument("--guidance", type=_number("guidance", float), default=None,
                   help=f"classifier-free guidance scale, 1–30 (default {DEFAULTS.guidance:g})")
    p.add_argument("--frames", type=_number("frames"), default=None,
                   help=f"frames, 1–64 (default: the model's; {ModelConfig.frames} for ModelScope's)")
    p.add_argument("--width", type=_number("width"), default=None,
                   help="width, multiple of 64 in 64–1024 (default: model's)")
    p.add_argument("--height", type=_number("height"), default=None,
                   help="height, multiple of 64 in 64–1024 (default: model's)")
    p.add_argument("--fps", type=_number("fps"), default=None,
                   help=f"frames per second of the MP4, {LIMITS['fps'][0]}–{LIMITS['fps'][1]} (default {DEFAULTS.fps})")
    p.add_argument("--sampler", default=None, help=f"ddim or dpmpp-2m (default {DEFAULTS.sampler})")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", default=None,
                   help="float32, float16, bfloat16 (default: float32 on cpu, fp16 on gpu) or fp8 (fp16 with the "
                        "UNet transformers' Linear layers in e4m3; GPUs of compute capability 8.9+; slower than "
                        "fp16 on an H200 and never tried on real weights)")
    p.add_argument("--lora", default=None, metavar="PATH[:SCALE]",
                   help="a LoRA style: a .safetensors file, or a folder with diffusers' "
                        "pytorch_lora_weights.safetensors, fused at SCALE: above {:g}, at most {:g} (default 1)"
                        .format(*LORA_SCALE_RANGE))


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="time our pipeline against diffusers' (needs the `bench` extra and a GPU)")
    b.add_argument("--out", type=_path, default=None, help="folder for bench.json and bench.md")
    b.add_argument("--overwrite", action="store_true", help="replace bench.json and bench.md already in --out")
    b.add_argument("--configs", nargs="+", default=None, choices=list(WORK),
                   help=f"work sizes, the first also profiled (default {' '.join(DEFAULT_CONFIGS)})")
    b.add_argument("--steps", type=_number("steps"), default=DEFAULTS.steps,
                   help=f"DDIM steps (default {DEFAULTS.steps})")
    b.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    b.add_argument("--tiny", action="store_true", help="a tiny random network (smoke test on the CPU)")
    b.add_argument("--repeats", type=_number("repeats", limits=(1, None)), default=1,
                   help="timed runs of the fast path after its warm-up")
    b.add_argument("--backend", default="inductor", help="torch.compile backend (aot_eager for CPU smoke tests)")
    b.add_argument("--no-diffusers", action="store_true", help="skip the diffusers runs")
    b.add_argument("--diffusers-compile", choices=["auto", "on", "off"], default="auto",
                   help="also time diffusers with torch.compile(unet, fullgraph=True) on the first work size "
                        "(auto: on a GPU)")
    b.add_argument("--no-profile", dest="profile", action="store_false", help="skip the kernel profile")
    b.add_argument("--no-eager", dest="eager", action="store_false", help="skip our eager runs")
    b.add_argument("--no-fast", dest="fast", action="store_false",
                   help="skip our compiled runs of --configs (the variants and kernel checks still run)")
    b.add_argument("--no-fp32-check", dest="fp32_check", action="store_false", help="skip the fp32 reference")
    b.add_argument("--no-cold-start", dest="cold_start", action="store_false", help="skip the cold-start process")
    b.add_argument("--cold-start-only", action="store_true", help="only the cold-start measurement")
    b.add_argument("--kernels", nargs="*", default=None, choices=KERNEL_CHECKS, metavar="CHECK",
                   help="check t2v.kernels against the stock ops on the UNet's own shapes, and time them (GPU): "
                        f"{', '.join(KERNEL_CHECKS)} (default: all)")
    b.add_argument("--variants", nargs="+", default=[], metavar="VARIANT",
                   help="our compiled path again with one change, on the first work size: triton-attention (the "
                        "kernel on every problem), sdpa-attention (on none), autotune (inductor's "
                        "max-autotune), fp8, fp8+triton-attention; or bf16 (the plain pipeline, for the precision "
                        "comparison)")
    b.add_argument("--deadline-s", type=_number("deadline-s", float, (0, None)), default=None,
                   help="start no further compiled work size after this many seconds (fits a time-limited lease)")
    b.add_argument("--cold-child", default=None, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four sub-commands."""
    parser = _Parser(prog="python -m t2v", description="ModelScope text-to-video")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _generate_parser(sub)
    c = sub.add_parser("convert", help="write a model as fp16 safetensors (memory-mapped, fast to load)")
    c.add_argument("source", help=f"ModelScope or diffusers directory, export, or {TINY_RANDOM}")
    c.add_argument("destination", type=_path)
    c.add_argument("--dtype", default="float16", help="float16 (default), bfloat16 or float32")
    c.add_argument("--overwrite", action="store_true", help="replace an export already in the destination")
    for name in ("width", "height", "frames"):
        c.add_argument(f"--{name}", type=_number(name), default=None,
                       help=f"the export's default {name} (see t2v.presets)")
    d = sub.add_parser("download", help="download the published weights (needs internet)")
    d.add_argument("directory", type=_path)
    d.add_argument("--repo", type=_repo, default=OFFICIAL_REPO, help=f"Hugging Face repo (default {OFFICIAL_REPO})")
    _bench_parser(sub)
    for command in sub.choices.values():  # -v after the command too, where most people put it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")
    return parser


def _values(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """One line per request value given on the command line that the request's own rules refuse."""
    problems = []
    for name in names:
        value = getattr(args, name)
        if value is not None:
            try:
                shown = preflight.shown(value) if isinstance(value, str) else _as_typed(value)  # '' shows as ''
                check_value(name, _plain(value), shown=f"--{name} {shown}")
            except InvalidRequest as exc:
                problems.append(str(exc))
    return problems


def _bench_variants(names: list[str], backend: str, device: str) -> list[str]:
    """One line per --variants name the benchmark has no variant for, or that `backend` or `device` cannot run."""
    from t2v.bench.sections import VARIANTS

    problems = []
    for name in names:
        if name not in VARIANTS:
            problems.append(f"--variants {name}: not a variant; use any of {', '.join(VARIANTS)}")
        elif name.startswith("fp8") and preflight.device("--device", device) is None and (
                reason := fp8.unavailable(device)):
            problems.append(f"--variants {name}: {reason}")
        elif (VARIANTS[name][1] or {}).get("autotune") and backend != "inductor":
            problems.append(f"--variants {name}: sets inductor's autotuning, so it needs --backend inductor (got "
                            f"{backend})")
    return problems


def _given_prompt(args: argparse.Namespace) -> str | None:
    """The prompt, given as the first argument or as --prompt."""
    return args.prompt if args.prompt is not None else args.prompt_option


def _prompt(args: argparse.Namespace) -> str | None:
    """What is wrong with the prompt, if anything: missing, given twice, or showing no character."""
    if args.prompt is not None and args.prompt_option is not None:
        return (f"two prompts: {args.prompt!r} and --prompt {args.prompt_option!r}; give it once, as the first "
                "argument or as --prompt")
    prompt = _given_prompt(args)
    if prompt is None:
        return 'no prompt: give it as the first argument, e.g. python -m t2v generate "A panda eating bamboo."'
    return empty_prompt(prompt, "the prompt")


def problems(args: argparse.Namespace) -> list[str]:
    """Everything wrong with the command's options that can be known before any work, one line each."""
    found: list[str | None] = []
    if args.command == "generate":
        found.append(_prompt(args))
        found += _values(args, REQUEST_OPTIONS)
        typed = args.output  # a trailing slash (a folder) is kept here, and gone from the Path
        args.output = None if typed is None else Path(typed)
        folder = None if typed is None else preflight.folder_named("--output", typed, "--overwrite")
        args.numbered = args.output or DEFAULT_OUTPUT  # the names it takes if its own is taken while it renders
        if args.output is None:
            found.append("--overwrite: replaces the file named with -o/--output, and none is named (each run without "
                         "-o writes a new video.mp4, video-2.mp4, …); name the file, or leave --overwrite out"
                         if args.overwrite else None)
            args.output = preflight.free_file(DEFAULT_OUTPUT)  # never an earlier run's video
        elif not args.overwrite and folder is None:
            found.append(preflight.not_there("--output", args.output, "--overwrite"))
        half = preflight.half_precision(args.dtype, args.device)  # a diffusers folder's fp16 files are read then
        found += [folder or preflight.mp4_file("--output", args.output),
                  preflight.model_source("--model", args.model, half), preflight.device("--device", args.device),
                  preflight.dtype("--dtype", args.dtype, args.device)]
        found.append(None if args.lora is None else preflight.lora("--lora", args.lora))
    elif args.command == "convert":
        same = _preset_named(args.destination) or _elsewhere(args.source, args.destination)  # said alone
        found += [preflight.model_source("source", args.source, preflight.half_precision(args.dtype, "cpu")),
                  same or (None if args.overwrite else _no_export_there(args.destination)),
                  preflight.output_folder("destination", args.destination),
                  preflight.dtype("--dtype", args.dtype), *_values(args, ("width", "height", "frames"))]
    elif args.command == "download":
        found.append(preflight.output_folder("directory", args.directory))
    else:
        found += _bench_problems(args)
    return [problem for problem in found if problem]


def _bench_problems(args: argparse.Namespace) -> list[str | None]:
    """What is wrong with bench's options: each bad value, and options that contradict each other (one of them
    would be silently ignored)."""
    found = [preflight.device("--device", args.device), preflight.compile_backend("--backend", args.backend),
             *_values(args, ("steps",)), _bench_diffusers(args)]
    found.append(None if args.out is None else preflight.output_folder("--out", args.out) or _no_bench_there(args))
    found.append(None if args.repeats >= 1 else f"--repeats {_as_typed(args.repeats)}: must be at least 1")
    found.append(None if args.deadline_s is None or args.deadline_s > 0 else
                 f"--deadline-s {_as_typed(args.deadline_s)}: must be a positive number of seconds (or left out: no "
                 "limit)")
    found += _bench_variants(args.variants, args.backend, args.device)
    found.append("--cold-start-only and --no-cold-start: the one measurement asked for is the one left out; "
                 "give one of them" if args.cold_start_only and not args.cold_start else None)
    dropped = [option for option, given in (("--configs", args.configs is not None), ("--variants", args.variants),
                                            ("--kernels", args.kernels is not None),
                                            ("--diffusers-compile on", args.diffusers_compile == "on")) if given]
    found.append(f"--cold-start-only measures the cold start alone, so {' and '.join(dropped)} would be ignored; "
                 "leave them out, or leave out --cold-start-only" if args.cold_start_only and dropped else None)
    found.append("--diffusers-compile on and --no-diffusers: the diffusers runs to compile are left out; give one of "
                 "them" if args.diffusers_compile == "on" and args.no_diffusers else None)
    return found


def _bench_diffusers(args: argparse.Namespace) -> str | None:
    """The diffusers runs (unless --no-diffusers) need the `bench` extra: found missing now, not after our runs."""
    if args.no_diffusers or args.cold_start_only or args.cold_child:
        return None
    missing = [name for name in ("diffusers", "transformers") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f"the diffusers runs need {' and '.join(missing)}, not installed here; install the bench extra "
            "(pip install -e '.[bench]'), or pass --no-diffusers to time our pipeline alone")


def _no_bench_there(args: argparse.Namespace) -> str | None:
    """bench replaces no earlier results unasked: no bench.json or bench.md in --out yet, or --overwrite."""
    there = [name for name in ("bench.json", "bench.md") if (args.out / name).exists()]
    if there and not args.overwrite:
        return (f"--out {args.out}: holds {' and '.join(there)} already; pass --overwrite to replace them, or name a "
                "new or empty folder")
    return None


def _no_export_there(destination: Path) -> str | None:
    """convert replaces nothing unasked: the files an export writes are not in the destination yet."""
    there = [name for name in (*export.FILES.values(), export.MANIFEST) if (destination / name).exists()]
    if there:
        return (f"destination {destination}: holds {', '.join(there)} already; pass --overwrite to replace them, or "
                "name a new or empty folder")
    return None


def _preset_named(destination: Path) -> str | None:
    """convert's destination is not named as the preset: `--model tiny-random` is the preset, never that folder."""
    if destination == Path(TINY_RANDOM):
        return (f"destination {destination}: an export of that name could not be loaded, since --model {TINY_RANDOM} "
                f"is the random-weight preset; name another folder, e.g. weights/{TINY_RANDOM}")
    return None


def _elsewhere(source: str, destination: Path) -> str | None:
    """convert's destination is not its source: the export would overwrite files it is reading."""
    try:
        same = source != TINY_RANDOM and Path(source).exists() and Path(source).resolve() == destination.resolve()
    except OSError:  # a folder this user may not enter: the source's own check says so
        return None
    return f"destination {destination}: is the source; name another folder for the export" if same else None


def generate(args: argparse.Namespace) -> int:
    """Load the model, generate with a progress bar, write the MP4."""
    given = {name: _plain(getattr(args, name)) for name in REQUEST_OPTIONS if getattr(args, name) is not None}
    asked = GenerationRequest(_given_prompt(args), args.negative, **given)
    with _source_named("--model", args.model):
        pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    if args.lora is not None:
        path, scale = preflight.split_lora(args.lora)
        pipe.set_lora(pipe.load_lora(path), scale)
    request = asked.with_defaults(pipe.config)
    try:
        with tqdm(total=request.steps, desc="denoising", unit="step") as bar:
            result = pipe.generate(request, on_step=lambda step, total: bar.update(step - bar.n))
    except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:  # not a bad value, but one this machine cannot hold
        said = out_of_memory(exc)
        if said is None:
            raise
        log.info("out of memory: %s", exc)
        print(f"error: the device ran out of memory rendering {request.frames} frames {request.width}x"
              f"{request.height} ({said}); ask for fewer --frames or a smaller --width/--height", file=sys.stderr)
        return 1
    written = args.written = write_mp4(args.output, encode_mp4(result.frames, request.fps), overwrite=args.overwrite,
                                       instead=preflight.numbered(args.numbered))  # done: Ctrl-C now changes nothing
    taken = "" if written == args.output else f"{args.output} appeared while rendering (another run?); "
    print(f"{taken}wrote {written} ({request.frames} frames {request.width}x{request.height}, seed {result.seed}, "
          f"{result.timings['total_s']:.1f} s)")
    for note in result.notes:
        print(f"note: {note}")
    return 0


CPU_OUT_OF_MEMORY = re.compile(r"DefaultCPUAllocator: can't allocate memory: you tried to allocate (\d+) bytes")


def out_of_memory(exc: BaseException) -> str | None:
    """What the allocator said of an allocation that failed (None: `exc` is no such failure). torch has a type for
    the GPU's (torch.cuda.OutOfMemoryError), but the CPU's is a plain RuntimeError, known only by its message."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return ". ".join(str(exc).split(". ")[:2])  # "CUDA out of memory. Tried to allocate 20.00 GiB"
    cpu = CPU_OUT_OF_MEMORY.search(str(exc))
    return None if cpu is None else f"tried to allocate {preflight.size_text(int(cpu[1]))} more"


@contextlib.contextmanager
def _source_named(option: str, source: str) -> Iterator[None]:
    """A model source's error as a line of the checks names it: after the option and its value (the loads that
    preflight could not foresee: a file changed since, a .pth/.bin whose keys only a load tells)."""
    try:
        yield
    except WeightsError as exc:
        raise type(exc)(f"{option} {preflight.shown(source)}: {exc}") from exc
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
        said = out_of_memory(exc)
        if said is None:
            raise
        raise MemoryError(f"{option} {preflight.shown(source)}: the {'GPU' if 'CUDA' in said else 'machine'} ran out "
                          f"of memory loading it ({said}); free some memory, or use a machine with more") from exc


def run(args: argparse.Namespace) -> int:
    """Do the command whose options passed the checks."""
    if args.command == "generate":
        return generate(args)
    if args.command == "bench":
        from t2v.bench import main, measure

        if args.cold_child:
            measure.cold_child(args.cold_child, args.device)
            return 0
        return main.run(args)
    if args.command == "convert":
        sizes = [_plain(getattr(args, name)) for name in ("width", "height", "frames")]
        with _source_named("source", args.source):
            out = convert(args.source, args.destination, args.dtype, *sizes)
        print(f"wrote {out}")
        return 0
    print(download(args.directory, args.repo))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad options are one line each on stderr and exit status 2, before any work; Ctrl-C at any point
    (reading the options, the checks, loading the model, the work) is one line and exit status 130."""
    working, args = None, None  # the command, once its work has begun
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(levelname)s %(message)s")
        found = problems(args)
        for problem in found:
            print(f"error: {problem}", file=sys.stderr)
        if found:
            return 2
        working = args.command
        return _outcome(args)
    except KeyboardInterrupt:  # before any work nothing is written; generate writes its MP4 whole, at the end
        written = getattr(args, "written", None)
        if written is not None:  # the work is done: the video is whole, and the run succeeded
            print(f"wrote {written} (interrupted after it was written whole)", file=sys.stderr)
            return 0
        said = ": nothing was written" if working in (None, "generate") else ""
        print(f"interrupted{said}", file=sys.stderr)
        return 130


def _outcome(args: argparse.Namespace) -> int:
    """The exit status of the command whose options passed the checks: a failure of the disk, the numbers or the Hub
    is one line on stderr too."""
    try:
        return run(args)
    except (WriteError, NonFiniteOutput, DownloadError, MemoryError) as exc:  # no bad value: the disk, numbers, Hub
        # or memory gave out
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (T2VError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the checks passed, then the disk or a mount changed under us
        print(f"error: {exc}", file=sys.stderr)
        return 1
