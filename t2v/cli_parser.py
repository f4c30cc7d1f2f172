"""The command line's parser (`python -m t2v generate|convert|download|bench`): its options, their help, and how
each value is read — numbers in ASCII digits within their range, paths checked as typed, a misspelt option answered
with the one it resembles. t2v.cli checks what the values name and runs the command.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import importlib.util
import itertools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from t2v import preflight, unexpanded
from t2v.bench import KERNEL_CHECKS
from t2v.bench.measure import DEFAULT_CONFIGS, WORK
from t2v.config import LORA_SCALE_RANGE, TINY_RANDOM, ModelConfig, SamplerDefaults
from t2v.errors import visible
from t2v.request import LIMITS, value_range
from t2v.weights.files import OFFICIAL_REPO, REPO_ID, REPO_RULES, download_command, hub_repo, web_address

DEFAULTS = SamplerDefaults()
DEFAULT_OUTPUT = Path("video.mp4")
BENCH_REPEATS = (1, 100)  # bench --repeats: each is one more render of every work size and variant (3 is usual)


_UNREAD = object()  # what a value argparse could not read stands for until parsing ends (then: the default)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block), exit status 2; options are spelled out in full (an
    abbreviation of one would silently stand for it), and one that is not there is answered with the closest that
    is (`--stpes`: did you mean --steps?); a value starting with '-' that argparse took for an option is named with
    how to write it (`--negative=-blurry`).

    A value it cannot read (`--steps abc`, `--configs huge`) does not stop the parse: each is one line in the
    namespace's `unread` (dest, line), in the order typed, its option left at its default, so that one run names
    every bad value (t2v.cli reports them with the checks' own lines). Only a command line argparse cannot follow
    (an option without its value, an unknown option) stops it, after the lines of the values it could not read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)
        self._given: list[str] = []  # the arguments this parser was handed, for error messages
        self._unread: list[tuple[str, str]] = []  # (dest, line) of each value it could not read

    def error(self, message: str) -> NoReturn:
        before = "".join(f"error: {visible(line)}\n" for _, line in self._unread)
        self.exit(2, f"{before}error: {visible(self.plain(message))}\n")

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        if isinstance(action, argparse._SubParsersAction):  # the command's name: nothing to go on without it
            return super()._get_value(action, arg_string)
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError as exc:
            self._unread.append((action.dest, str(exc)))
            return _UNREAD

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if value is _UNREAD:
            return
        if isinstance(action, argparse._SubParsersAction):
            return super()._check_value(action, value)
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            self._unread.append((action.dest, str(exc)))

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(sys.argv[1:] if args is None else args)
        self._unread = []
        parsed, extras = super().parse_known_args(args, namespace)
        dests = {dest for dest, _ in self._unread}
        for action in self._actions:  # a value it could not read stands for none: the option's default
            if action.dest in dests:
                setattr(parsed, action.dest, action.default)
        self._unread = parsed.unread = [*getattr(parsed, "unread", []), *self._unread]  # the command's first
        return parsed, extras

    def plain(self, message: str) -> str:
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
        command = self._commands().get(getattr(parsed, "command", None) or "")
        actions = {**self._option_string_actions, **(command._option_string_actions if command is not None else {})}
        given = self._given
        separated = given[given.index("--") + 1:] if "--" in given else []
        if extras:
            self.error(_unrecognized(extras, list(actions), getattr(parsed, "prompt", None), separated))
        twice = _given_twice(given[:len(given) - len(separated)], actions)
        if twice:
            self.error(twice)
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
    if (repo := hub_repo(value)) is not None:
        raise argparse.ArgumentTypeError(f"{value!r} is the repo's web address; write its id, --repo {repo}")
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


def _number(name: str, kind: type[int] | type[float] = int, limits: tuple[float, float | None] | None = None,
            above: bool = False) -> Callable[[str], int | float]:
    """The type of every numeric option: its value (remembering how it was typed), or one line naming what was typed
    and what range is right (`--steps 1e3`: argparse alone says "invalid int value"). `limits` (low, high or None
    for none) default to the request field `name`'s; `above`: low itself is not taken (t2v.cli's check says so)."""
    low, high = value_range(name) if limits is None else limits
    span = f"from {low} to {high}" if high is not None else f"above {low}" if above else f"of {low} or more"

    def read(value: str) -> int | float:
        integer = kind is int
        if not (_DIGITS if integer else _DECIMAL).fullmatch(value.strip()):
            what = "a whole number (digits 0-9 only)" if integer else "a number"
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}; write one {span}")
        number = _Int(value) if integer else _Float(value)
        number.typed = value.strip()
        return number
    return read


def as_typed(value: Any) -> Any:
    """A value as the user typed it, where _number read it."""
    return getattr(value, "typed", value)


def plain(value: Any) -> Any:
    """A _number value as the plain int or float it stands for."""
    return int(value) if isinstance(value, _Int) else float(value) if isinstance(value, _Float) else value


def _name(value: str) -> str:
    """A named choice's value (--device, --dtype, --sampler) in any case, as the bot's T2V_ settings are read:
    `--dtype FP16` is fp16 (a bad one is named lowered by its own check; spaces at its ends are kept, for that
    check to refuse and show quoted)."""
    return value.lower()


def _path(value: str) -> Path:
    """A path option's value; an empty one (`-o ""`) would otherwise stand for the current folder."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty: name a path")
    problem = preflight.path_length(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    problem = unexpanded.problem(value) or preflight.unreachable(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{value}: {problem}")
    return Path(value)


def _folder(value: str) -> Path:
    """download's folder (_path's checks): never a web address, which would name a folder https:/huggingface.co/… to
    fetch the official repo into, whatever repo the address names."""
    if (repo := hub_repo(value)) is not None:
        raise argparse.ArgumentTypeError(f"{value} is the web address of the Hugging Face repo {repo}, not a folder; "
                                         f"to download it: {download_command(repo)}")
    if web_address(value):
        raise argparse.ArgumentTypeError(f"{value} is a web address, not a folder; name the folder to download into "
                                         "(and the repo with --repo OWNER/NAME)")
    return _path(value)


def _typed_path(value: str) -> str:
    """A path option's value as typed, after _path's checks: a slash at its end, which Path drops, is kept."""
    _path(value)
    return value


def _given_twice(given: list[str], actions: dict[str, argparse.Action]) -> str | None:
    """An option of one value given more than once with different values (argparse keeps the last without a word:
    `--steps 20 … --steps 50` from an edited command line would render 50 steps). A flag given twice is harmless."""
    seen: dict[argparse.Action, tuple[str, str]] = {}
    for i, word in enumerate(given):
        name, equals, value = word.partition("=")
        action = actions.get(name) if name.startswith("-") else None
        if action is None or action.nargs is not None or not isinstance(action, argparse._StoreAction):
            continue
        value = value if equals else (given[i + 1] if i + 1 < len(given) else "")
        if action in seen and seen[action][1] != value:
            first, before = seen[action]
            return (f"{name} is given twice ({first} {before}, then {name} {value}); give it once, with the value "
                    "you mean")
        seen[action] = (name, value)
    return None


def _closest(option: str, known: list[str]) -> str | None:
    """The real option `option` is most likely a misspelling of, compared without their dashes (`--bogus` is not
    close to `--out` by its letters, only by its dashes); first, the one long option it begins (`--neg`, argparse's
    own abbreviation of `--negative`, which this parser does not take: too few letters for difflib to match)."""
    started = [name for name in known if name.startswith("--") and option.startswith("--") and name.startswith(option)]
    if len(started) == 1:
        return started[0]
    names = {name.lstrip("-"): name for name in known}
    found = difflib.get_close_matches(option.lstrip("-"), list(names), n=1, cutoff=0.6)
    return names[found[0]] if found else None


def _unrecognized(extras: list[str], known: list[str], prompt: str | None, separated: list[str]) -> str:
    """One line for arguments no option takes: each misspelt option with its closest real one, an option typed
    after `--` (where every word is an argument; `separated`: what came after it), and words that belong to an
    unquoted prompt."""
    extras = [extra for extra in extras if extra != "--"]  # the end of the options, not one
    options = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-")]
    late = {extra.split("=", 1)[0] for extra in separated}
    if options:
        guesses = {option: _closest(option, known) for option in options}
        def unknown(option: str) -> str:  # a word after one dash, and no prompt yet: perhaps the prompt itself
            if "--prompt" in known and prompt is None and not option.startswith("--"):
                return f"no such option (a prompt that starts with '-' is given as --prompt=\"{option}\")"
            return "no such option"

        def said_of(option: str, guess: str | None) -> str:
            if option in late and option in known:
                return f"{option}: after --, no option is read; put it before the --"
            return f"{option}: did you mean {guess}?" if guess else f"{option}: {unknown(option)}"

        said = "; ".join(said_of(option, guess) for option, guess in guesses.items())
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
    p.add_argument("--sampler", type=_name, default=None, help=f"ddim or dpmpp-2m (default {DEFAULTS.sampler})")
    p.add_argument("--device", type=_name, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", type=_name, default=None,
                   help="float32, float16, bfloat16 (default: float32 on cpu, fp16 on gpu) or fp8 (fp16 with most of "
                        "the UNet transformers' Linear layers in e4m3, their input scales calibrated by a short "
                        "render at load; GPUs of compute capability 8.9+; never tried on real weights)")
    p.add_argument("--lora", default=None, metavar="PATH[:SCALE]",
                   help="a LoRA style: a .safetensors file, a PyTorch file of plain tensors (.bin, .pt; read with "
                        "torch.load(weights_only=True)), or a folder with diffusers' pytorch_lora_weights.safetensors "
                        "(else its pytorch_lora_weights.bin), fused at SCALE: above {:g}, at most {:g} (default 1)"
                        .format(*LORA_SCALE_RANGE))


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="time our pipeline against diffusers' (needs the `bench` extra and a GPU)")
    b.add_argument("--out", type=_path, default=None, help="folder for bench.json and bench.md")
    b.add_argument("--overwrite", action="store_true", help="replace bench.json and bench.md already in --out")
    b.add_argument("--configs", nargs="+", default=None, choices=list(WORK),
                   help=f"work sizes, the first also profiled (default {' '.join(DEFAULT_CONFIGS)})")
    b.add_argument("--steps", type=_number("steps"), default=DEFAULTS.steps,
                   help=f"DDIM steps (default {DEFAULTS.steps})")
    b.add_argument("--device", type=_name, default="cuda",
                   help="cuda (default), cuda:N, or cpu with --tiny (the full-size networks take hours on the CPU)")
    b.add_argument("--tiny", action="store_true", help="a tiny random network (a smoke test, on the CPU too)")
    b.add_argument("--repeats", type=_number("repeats", limits=BENCH_REPEATS), default=1,
                   help="timed runs of the fast path after its warm-up, {}–{} (default 1; the median is kept)"
                   .format(*BENCH_REPEATS))
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
                        "kernel on every problem), sdpa-attention (on none), triton-ff (the fp16 feed-forward's GEMM "
                        "and gate as one Triton kernel, as fp8's by default), fp8-plain-ff (fp8's as cuBLAS and a "
                        "gate pass), autotune (inductor's "
                        "max-autotune), fp8 (static scales, as --dtype fp8), fp8-row, fp8-tensor (per-call scales), "
                        "fp8-all (attention output projections in fp8 too), fp8-conv (3×3 convolutions in fp8 too); "
                        "or bf16 (the plain pipeline, for the "
                        "precision comparison)")
    b.add_argument("--deadline-s", type=_number("deadline-s", float, (0, None), above=True), default=None,
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
    c.add_argument("--dtype", type=_name, default="float16", help="float16 (default), bfloat16 or float32")
    c.add_argument("--overwrite", action="store_true", help="replace an export already in the destination")
    for name in ("width", "height", "frames"):
        c.add_argument(f"--{name}", type=_number(name), default=None,
                       help=f"the export's default {name} (see t2v.presets)")
    d = sub.add_parser("download", help="download the published weights (needs internet)")
    d.add_argument("directory", type=_folder)
    d.add_argument("--repo", type=_repo, default=OFFICIAL_REPO, help=f"Hugging Face repo (default {OFFICIAL_REPO})")
    _bench_parser(sub)
    for command in sub.choices.values():  # -v after the command too, where most people put it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")
    return parser
