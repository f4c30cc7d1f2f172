"""Command line: `python -m t2v generate|convert|download|bench`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from t2v.config import TINY_RANDOM
from t2v.errors import T2VError
from t2v.loader import convert, load_pipeline
from t2v.request import GenerationRequest
from t2v.video import encode_mp4
from t2v.weights.files import OFFICIAL_REPO

log = logging.getLogger(__name__)


def _generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate one video from a prompt")
    p.add_argument("prompt", help='what to show, e.g. "A panda eating bamboo on a rock."')
    p.add_argument("-o", "--output", type=Path, default=Path("video.mp4"), help="MP4 file to write")
    p.add_argument("--model", default=TINY_RANDOM,
                   help=f"ModelScope or diffusers directory, `t2v convert` export, or {TINY_RANDOM} (default; noise)")
    p.add_argument("--negative", default="", help="negative prompt (replaces the empty unconditional prompt)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    p.add_argument("--steps", type=int, default=50, help="sampling steps, 1–150 (default 50)")
    p.add_argument("--guidance", type=float, default=9.0, help="classifier-free guidance scale, 1–30 (default 9)")
    p.add_argument("--frames", type=int, default=None, help="frames, 1–64 (default: the model's, 16)")
    p.add_argument("--width", type=int, default=None, help="width, multiple of 64 in 64–1024 (default: model's)")
    p.add_argument("--height", type=int, default=None, help="height, multiple of 64 in 64–1024 (default: model's)")
    p.add_argument("--fps", type=int, default=8, help="frames per second of the MP4 (default 8)")
    p.add_argument("--sampler", default="ddim", help="ddim (default) or dpmpp-2m")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", default=None, help="float32, float16 or bfloat16 (default: float32 on cpu, fp16 on gpu)")


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="time our pipeline against diffusers' (needs the `bench` extra and a GPU)")
    b.add_argument("--out", default=None, help="folder for bench.json and bench.md")
    b.add_argument("--configs", nargs="+", default=["standard", "batch4", "zeroscope"],
                   choices=["standard", "batch4", "zeroscope"], help="work sizes, the first also profiled")
    b.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    b.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    b.add_argument("--tiny", action="store_true", help="a tiny random network (smoke test on the CPU)")
    b.add_argument("--repeats", type=int, default=1, help="timed runs of the fast path after its warm-up")
    b.add_argument("--backend", default="inductor", help="torch.compile backend (aot_eager for CPU smoke tests)")
    b.add_argument("--no-diffusers", action="store_true", help="skip the diffusers runs")
    b.add_argument("--diffusers-compile", choices=["auto", "on", "off"], default="auto",
                   help="also time diffusers with torch.compile(unet, fullgraph=True) on the first work size "
                        "(auto: on a GPU)")
    b.add_argument("--no-profile", dest="profile", action="store_false", help="skip the kernel profile")
    b.add_argument("--no-fp32-check", dest="fp32_check", action="store_false", help="skip the fp32 reference")
    b.add_argument("--no-cold-start", dest="cold_start", action="store_false", help="skip the cold-start process")
    b.add_argument("--cold-start-only", action="store_true", help="only the cold-start measurement")
    b.add_argument("--deadline-s", type=float, default=None,
                   help="start no further compiled work size after this many seconds (fits a time-limited lease)")
    b.add_argument("--cold-child", default=None, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four sub-commands."""
    parser = argparse.ArgumentParser(prog="python -m t2v", description="ModelScope text-to-video")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    _generate_parser(sub)
    c = sub.add_parser("convert", help="write a model as fp16 safetensors (memory-mapped, fast to load)")
    c.add_argument("source", help=f"ModelScope or diffusers directory, export, or {TINY_RANDOM}")
    c.add_argument("destination", type=Path)
    c.add_argument("--dtype", default="float16", help="float16 (default), bfloat16 or float32")
    for name in ("width", "height", "frames"):
        c.add_argument(f"--{name}", type=int, default=None, help=f"the export's default {name} (see t2v.presets)")
    d = sub.add_parser("download", help="download the published weights (needs internet)")
    d.add_argument("directory", type=Path)
    d.add_argument("--repo", default=OFFICIAL_REPO, help=f"Hugging Face repo (default {OFFICIAL_REPO})")
    _bench_parser(sub)
    return parser


def generate(args: argparse.Namespace) -> int:
    """Load the model, generate with a progress bar, write the MP4."""
    GenerationRequest(args.prompt, args.negative, args.seed, args.steps, args.guidance, args.frames or 16,
                      args.width or 256, args.height or 256, args.fps, args.sampler)  # fail fast, before loading
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    cfg = pipe.config
    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    request = GenerationRequest(args.prompt, args.negative, args.seed, args.steps, args.guidance,
                                pick(args.frames, cfg.frames), pick(args.width, cfg.width),
                                pick(args.height, cfg.height), args.fps, args.sampler)
    with tqdm(total=request.steps, desc="denoising", unit="step") as bar:
        result = pipe.generate(request, on_step=lambda step, total: bar.update(step - bar.n))
    args.output.write_bytes(encode_mp4(result.frames, request.fps))
    print(f"wrote {args.output} ({request.frames} frames {request.width}x{request.height}, seed {result.seed}, "
          f"{result.timings['total_s']:.1f} s)")
    for note in result.notes:
        print(f"note: {note}")
    return 0


def download(directory: Path, repo: str) -> int:
    """Snapshot the published ModelScope-layout repository with huggingface_hub."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = snapshot_download(repo_id=repo, local_dir=directory)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        print(f"error: could not download {repo} from the Hugging Face Hub ({type(exc).__name__}: {exc}). This "
              "needs internet access; on a machine without it, copy the four files (configuration.json, "
              "text2video_pytorch_model.pth, VQGAN_autoencoder.pth, open_clip_pytorch_model.bin) into "
              f"{directory} by hand.", file=sys.stderr)
        return 1
    print(f"downloaded {repo} to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; user errors become one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.command == "generate":
            return generate(args)
        if args.command == "bench":
            from t2v.bench import main, measure

            if args.cold_child:
                measure.cold_child(args.cold_child, args.device)
                return 0
            return main.run(args)
        if args.command == "convert":
            out = convert(args.source, args.destination, args.dtype, args.width, args.height, args.frames)
            print(f"wrote {out}")
            return 0
        return download(args.directory, args.repo)
    except (T2VError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
