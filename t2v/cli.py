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
import importlib.metadata
import importlib.util
import logging
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import torch
from tqdm import tqdm

from t2v import preflight
from t2v.cli_parser import BENCH_REPEATS, DEFAULT_OUTPUT, as_typed, build_parser, plain
from t2v.config import TINY_RANDOM
from t2v.download import download
from t2v.errors import DownloadError, InvalidRequest, NonFiniteOutput, T2VError, WeightsError, WriteError, visible
from t2v.kernels import fp8
from t2v.loader import convert, hidden_by_export, load_pipeline
from t2v.precision import FP8, missing_device
from t2v.request import GenerationRequest, check_value, empty_prompt, negative_is_prompt
from t2v.sizes import bytes_text, frame_text
from t2v.video import encode_mp4, write_whole
from t2v.weights import export

log = logging.getLogger(__name__)

REQUEST_OPTIONS = ("seed", "steps", "guidance", "frames", "width", "height", "fps", "sampler")  # → request fields


def _values(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """One line per request value given on the command line that the request's own rules refuse."""
    problems = []
    for name in names:
        value = getattr(args, name)
        if value is not None:
            try:
                shown = preflight.shown(value) if isinstance(value, str) else as_typed(value)  # '' shows as ''
                check_value(name, plain(value), shown=f"--{name} {shown}")
            except InvalidRequest as exc:
                problems.append(str(exc))
    return problems


def _bench_variants(names: list[str], backend: str, device: str) -> list[str]:
    """One line per --variants name the benchmark has no variant for, or that `backend` or `device` cannot run."""
    from t2v.bench.sections import VARIANTS

    problems = []
    for name in names:
        if name not in VARIANTS:
            problems.append(f"--variants {preflight.shown(name)}: not a variant; use any of {', '.join(VARIANTS)}")
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
    return _not_utf8("the prompt", prompt) or empty_prompt(prompt, "the prompt")


def _negative(args: argparse.Namespace) -> str | None:
    """What is wrong with --negative, if anything: bytes that are no UTF-8 text, or the prompt itself (guidance then
    steers toward it and away from it at once; the bot refuses it too)."""
    prompt, negative = _given_prompt(args), args.negative
    problem = _not_utf8("--negative", negative)
    if problem is None and prompt is not None and negative_is_prompt(prompt, negative):
        problem = (f"--negative {preflight.shown(negative)}: is the prompt itself, so guidance cancels out (the video "
                   "renders as at --guidance 1); name what to avoid, e.g. --negative \"blurry, low quality\", or leave "
                   "--negative out")
    return problem


def _not_utf8(name: str, text: str) -> str | None:
    """A prompt whose bytes are no UTF-8 text (typed in a Latin-1 terminal: `café` as caf\\xe9), which Python hands
    on as stand-ins the text encoder would read as other characters than those typed; shown as its bytes."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        try:  # argv's bytes that are no UTF-8 arrive as U+DC80–U+DCFF, which give the bytes back
            typed, said = text.encode(errors="surrogateescape"), f"byte {bad.encode(errors='surrogateescape')[0]:#x}"
        except UnicodeEncodeError:  # another lone surrogate (main() called with such a str)
            typed, said = text.encode(errors="backslashreplace"), f"{bad!r}"
        return (f"{name} {typed!r} is not UTF-8 text ({said}), so the text encoder would read other characters than "
                "those typed; type it in UTF-8 (a terminal set to UTF-8, e.g. LANG=C.UTF-8)")
    return None


def problems(args: argparse.Namespace) -> list[str]:
    """Everything wrong with the command's options that can be known before any work, one line each: first each
    value argparse could not read (`args.unread`, t2v.cli_parser), then what the checks refuse of the others (an
    option whose value was not read is not checked again, nor against the others)."""
    unread = {dest for dest, _ in getattr(args, "unread", [])}
    found: list[str | None] = [line for _, line in getattr(args, "unread", [])]
    if args.command == "generate":
        found += [_prompt(args), _negative(args)]
        found += _values(args, REQUEST_OPTIONS)
        if "output" not in unread:
            found += _output_problems(args)
        half = preflight.half_precision(args.dtype, args.device)  # a diffusers folder's fp16 files are read then
        found += [preflight.model_source("--model", args.model, half), preflight.device("--device", args.device),
                  preflight.dtype("--dtype", args.dtype, args.device)]
        found.append(None if args.lora is None else preflight.lora("--lora", args.lora))
        if args.lora is not None and args.dtype in FP8:  # else refused by set_lora once the model is loaded
            found.append(f"--dtype {args.dtype} with --lora: a style is fused into the UNet's weights, which fp8 keeps "
                         "in e4m3, too coarse to hold it; use --dtype float16 (or bfloat16) for a style, or leave "
                         "--lora out")
    elif args.command == "convert":
        same = None if "destination" in unread else (_preset_named(args.destination) or
                                                     _elsewhere(args.source, args.destination))  # said alone
        found.append(preflight.model_source("source", args.source, preflight.half_precision(args.dtype, "cpu")))
        if "destination" not in unread:
            hidden = hidden_by_export(args.destination)
            found += [same or (f"destination {args.destination}: {hidden}" if hidden else None) or
                      (None if args.overwrite else _no_export_there(args.destination)),
                      preflight.output_folder("destination", args.destination)]
        found += [preflight.dtype("--dtype", args.dtype), *_values(args, ("width", "height", "frames"))]
    elif args.command == "download":
        found.append(None if "directory" in unread else preflight.output_folder("directory", args.directory))
    else:
        found += _bench_problems(args)
    return [problem for problem in found if problem]


def _output_problems(args: argparse.Namespace) -> list[str | None]:
    """What is wrong with generate's --output (and --overwrite with it); sets args.output to the file to write and
    args.numbered to the names it takes if its own is taken while it renders."""
    found: list[str | None] = []
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
    found.append(folder or preflight.mp4_file("--output", args.output))
    return found


def _bench_problems(args: argparse.Namespace) -> list[str | None]:
    """What is wrong with bench's options: each bad value, and options that contradict each other (one of them
    would be silently ignored)."""
    found = [_bench_device(args), preflight.compile_backend("--backend", args.backend),
             *_values(args, ("steps",)), _bench_diffusers(args)]
    found.append(None if args.out is None else preflight.output_folder("--out", args.out) or _no_bench_there(args))
    low, high = BENCH_REPEATS
    found.append(None if low <= args.repeats <= high else
                 f"--repeats {as_typed(args.repeats)}: give {low} to {high} timed runs (each renders every work size "
                 "and variant once more; 3 is usual)")
    found.append(None if args.deadline_s is None or args.deadline_s > 0 else
                 f"--deadline-s {as_typed(args.deadline_s)}: must be a positive number of seconds (or left out: no "
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


def _bench_device(args: argparse.Namespace) -> str | None:
    """bench's device: one this machine has, and the CPU only for the tiny network (--tiny): the full-size networks'
    runs (each work size, eager and compiled, diffusers' too) take hours there, and time nothing a user renders on."""
    cpu = "--device cpu --tiny"  # where a machine without a GPU is sent: the tiny network, never the full size
    problem = missing_device(args.device, cpu if not args.tiny else "--device cpu")
    if problem is not None:
        return f"--device {preflight.shown(args.device)}: {problem}"
    if torch.device(args.device).type == "cpu" and not args.tiny and not args.cold_child:  # the child: as its parent
        return (f"--device {args.device}: bench times the full-size networks, which takes hours on the CPU; add --tiny "
                "to time the tiny random network (a smoke test), or run it on a GPU (--device cuda)")
    return None


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
    given = {name: plain(getattr(args, name)) for name in REQUEST_OPTIONS if getattr(args, name) is not None}
    asked = GenerationRequest(_given_prompt(args), args.negative, **given)
    with _source_named("--model", args.model):
        pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    if args.lora is not None:  # whether it fits the model is known now: a line of its own that names --lora too
        path, scale = preflight.split_lora(args.lora)
        with _source_named("--lora", args.lora):
            pipe.set_lora(pipe.load_lora(path), scale)
    request = asked.with_defaults(pipe.config)
    try:
        with tqdm(total=request.steps, desc="denoising", unit="step", file=_Unfailing(sys.stderr)) as bar:
            result = pipe.generate(request, on_step=lambda step, total: bar.update(step - bar.n))
    except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:  # not a bad value, but one this machine cannot hold
        said = out_of_memory(exc)
        if said is None:
            raise
        log.info("out of memory: %s", exc)
        print(f"error: the device ran out of memory rendering {_sized(request)} ({said}); ask for fewer --frames or "
              "a smaller --width/--height", file=sys.stderr)
        return 1
    made = f"{_sized(request)}, seed {result.seed}"
    data = encode_mp4(result.frames, request.fps)
    try:
        written = args.written = write_whole(args.output, data, overwrite=args.overwrite,
                                             instead=preflight.numbered(args.numbered))
    except WriteError as exc:
        return _kept_elsewhere(exc, args.output, data, made)
    # written: a Ctrl-C from here on changes nothing
    taken = "" if written == args.output else f"{args.output} appeared while rendering (another run?); "
    _report(f"{taken}wrote {written} ({made}, {result.timings['total_s']:.1f} s)",
            *(f"note: {note}" for note in result.notes))
    return 0


def _sized(request: GenerationRequest) -> str:
    """A video's length and size as its lines name them: '16 frames 256×256', '1 frame 64×64'."""
    return f"{request.frames} frame{'' if request.frames == 1 else 's'} {frame_text(request.width, request.height)}"


def _kept_elsewhere(exc: WriteError, output: Path, data: bytes, made: str) -> int:
    """A video the checked --output could not take after all (its folder removed or made read-only while rendering,
    a lost mount, a full disk) is kept under a free video-N.mp4 in the current folder, else in the temporary one:
    minutes of rendering are not thrown away for a name. Exit status 1 either way, the line naming both."""
    for folder in _fallback_folders(output):
        try:
            kept = write_whole(folder / DEFAULT_OUTPUT, data, overwrite=False,
                               instead=preflight.numbered(folder / DEFAULT_OUTPUT))
        except WriteError as again:
            log.info("could not keep the video in %s either: %s", folder, again)
            continue
        print(visible(f"error: could not write {output} ({_cause(exc)}); the video is kept as {kept} instead ({made})"),
              file=sys.stderr)
        return 1
    raise exc


def _fallback_folders(output: Path) -> Iterator[Path]:
    """Where a video its --output could not take is kept: the current folder (as a relative name: video-2.mp4), then
    the temporary one; never the folder that just failed."""
    try:
        here: Path | None = Path.cwd()
    except OSError:  # the current folder was removed: a relative --output failed with it
        here = None
    failed = output.parent if output.is_absolute() else here and here / output.parent
    if here is not None and here != failed:
        yield Path()
    temporary = Path(tempfile.gettempdir())
    if temporary != failed:
        yield temporary


def _cause(exc: WriteError) -> str:
    """What the system said of a write that failed (No such file or directory)."""
    cause = exc.__cause__
    return cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause or exc)


class _Unfailing:
    """The progress bar's stream: a stderr that cannot take it (a pipe read no more: `2>&1 | head -1`, a closed
    terminal) stops the bar, not the render."""

    def __init__(self, stream: TextIO | None):
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None)  # tqdm draws its bar in the characters this can show

    def write(self, text: str) -> None:
        self._do(lambda stream: stream.write(text))

    def flush(self) -> None:
        self._do(lambda stream: stream.flush())

    def _do(self, action: Callable[[TextIO], object]) -> None:
        if self.stream is None:
            return
        try:
            action(self.stream)
        except (OSError, ValueError) as exc:  # ValueError: a closed file
            log.info("the progress bar stops: stderr could not take it (%s)", exc)
            self.stream = None


def _report(*lines: str) -> None:
    """Lines about work done (a video or an export written whole), on stdout. A stdout that cannot take them (a pipe
    read no more: `| head -0`, `> /dev/full`, an encoding without a character of the file's name) loses the lines
    to stderr, never the run: its status stays 0 (t2v/__main__.py keeps the exit quiet too)."""
    text = "".join(f"{visible(line)}\n" for line in lines)
    try:
        print(text, end="", flush=True)
    except (OSError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        log.info("stdout could not take the report (%s); it goes to stderr", exc)
        with contextlib.suppress(OSError, ValueError):
            print(text, end="", file=sys.stderr, flush=True)


CPU_OUT_OF_MEMORY = re.compile(r"DefaultCPUAllocator: can't allocate memory: you tried to allocate (\d+) bytes")


def out_of_memory(exc: BaseException) -> str | None:
    """What the allocator said of an allocation that failed (None: `exc` is no such failure). torch has a type for
    the GPU's (torch.cuda.OutOfMemoryError), but the CPU's is a plain RuntimeError, known only by its message."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return ". ".join(str(exc).split(". ")[:2])  # "CUDA out of memory. Tried to allocate 20.00 GiB"
    cpu = CPU_OUT_OF_MEMORY.search(str(exc))
    return None if cpu is None else f"tried to allocate {bytes_text(int(cpu[1]))} more"


@contextlib.contextmanager
def _source_named(option: str, source: str) -> Iterator[None]:
    """A model's or a LoRA's error as a line of the checks names it: after the option and its value (the loads that
    preflight could not foresee: a file changed since the checks, a tensor whose values are wrong, a LoRA that does
    not fit the model)."""
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
            measure.cold_child(args.cold_child, args.device, args.backend)
            return 0
        return main.run(args)
    if args.command == "convert":
        sizes = [plain(getattr(args, name)) for name in ("width", "height", "frames")]
        with _source_named("source", args.source):
            out = convert(args.source, args.destination, args.dtype, *sizes)
        _report(f"wrote {out}")
        return 0
    _report(download(args.directory, args.repo))
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
            print(f"error: {visible(problem)}", file=sys.stderr)
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
        print(f"error: {visible(str(exc))}", file=sys.stderr)
        return 1
    except (T2VError, ValueError) as exc:
        print(f"error: {visible(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the checks passed, then the disk or a mount changed under us
        print(f"error: {visible(str(exc))}", file=sys.stderr)
        return 1
