"""fp8's static scales on the shapes they were not calibrated on: every aspect and frame count /video offers.

`T2V_DTYPE=fp8` fixes each fp8 layer's input scale at load from one render at the model's own size (16 frames,
256², guidance 9: t2v.loader.calibrate_fp8) with 8× headroom (t2v.kernels.fp8.HEADROOM); an input larger than that
is clamped to e4m3's ±448 · scale. The benchmark's fp8 rows are all at the calibrated shape. This renders the same
prompt, seed and noise on each shape — the five aspects at 1, 16 and 64 frames, the guidance scale's ends, and the
CLI's smallest and largest sizes — with fp16 (the reference), fp8 (what the bot serves) and fp8 with the e4m3 3×3
convolutions (`fp8_convs`, opt-in), and reports per shape and precision:

* the final latents' error relative to fp16's (max |difference| / max |fp16 latent|);
* from a forward pre-hook on every static fp8 layer, the largest input it met as a fraction of what its scale can
  hold (448 · scale; above 1 the layer clamped), how many layers passed 1, and the worst three; the feed-forwards
  t2v.kernels.geglu runs (fp8's default since perf-notes row 74) call neither layer as a module, so a hook on each
  computes its first layer's input and the hidden activation the kernel writes in e4m3 (the plain GEGLU's) for them.

Real-size network, seeded random weights; each pipeline on the fast path's eager form (fused projections,
channels-last, the temporal-attention kernel; no compile and no CUDA graphs, so the hooks see every call).

GPU:  python benchmarks/fp8_shapes.py --out OUT/fp8_shapes.json [--steps 20] [--deadline-s 300] [--only ' g30' ...]
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/fp8_shapes.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import probes  # noqa: E402
from t2v import GenerationRequest  # noqa: E402
from t2v.bench import measure  # noqa: E402
from t2v.config import ModelConfig  # noqa: E402
from t2v.fast import FusedFeedForward  # noqa: E402
from t2v.kernels import fp8  # noqa: E402
from t2v.networks import random_state_dicts  # noqa: E402
from t2v.presets import ASPECTS, aspect_sizes  # noqa: E402
from t2v.request import LIMITS  # noqa: E402

log = logging.getLogger("fp8_shapes")
PRECISIONS = {"fp8": {}, "fp8-conv": {"fp8_convs": True}}  # name → t2v.loader.assemble's fp8 options
FRAMES = (16, 1, 64)  # the calibrated length first
WORST = 3


def shapes(config: ModelConfig) -> list[dict]:
    """(label, width, height, frames, guidance) of each render, the calibrated one first and the largest last."""
    sizes = aspect_sizes(config)
    out = [{"aspect": aspect, "width": sizes[aspect][0], "height": sizes[aspect][1], "frames": frames,
            "guidance": 9.0} for frames in FRAMES for aspect in ASPECTS]
    native = {"width": config.width, "height": config.height, "frames": config.frames}
    out += [{"aspect": "1:1", **native, "guidance": g} for g in LIMITS["guidance"]]
    low, high = LIMITS["size"]
    out += [{"aspect": "1:1", "width": low, "height": low, "frames": config.frames, "guidance": 9.0},
            {"aspect": "16:9", "width": high, "height": 9 * high // 16 // 64 * 64, "frames": config.frames,
             "guidance": 9.0}]
    return out


def label(shape: dict) -> str:
    return f"{shape['aspect']} {shape['width']}×{shape['height']}×{shape['frames']} g{shape['guidance']:g}"


class Watch:
    """The largest input each calibrated static fp8 layer meets, as a fraction of 448 · its scale (kept on the
    device until `fractions` reads them: no sync per call)."""

    def __init__(self, module: torch.nn.Module):
        self.seen: dict[str, torch.Tensor] = {}
        self.handles = [layer.register_forward_pre_hook(self._hook(name)) for name, layer in module.named_modules()
                        if isinstance(layer, fp8.Fp8Layer) and layer.scaling == "static"]
        self.handles += [ff.register_forward_pre_hook(self._kernel_hook(name)) for name, ff in module.named_modules()
                         if isinstance(ff, FusedFeedForward) and isinstance(ff.net[2], fp8.Fp8Layer)]

    def _kernel_hook(self, name: str):
        """A feed-forward t2v.kernels.geglu runs calls neither of its layers as a module, so their hooks never see
        its inputs: here the first layer's input is handed to its own hook through the plain GEGLU, and the hidden
        activation that GEGLU gives (what the kernel writes in e4m3 by the second layer's scale) to the second's."""
        second = self._hook(f"{name}.net.2")

        def record(ff: FusedFeedForward, args: tuple) -> None:
            if FusedFeedForward._static(ff.net[0].proj) and FusedFeedForward._static(ff.net[2]):  # else the
                second(ff.net[2], (ff.net[0](args[0]),))  # kernel is not used, and the layers' own hooks see it
        return record

    def _hook(self, name: str):
        def record(layer: fp8.Fp8Layer, args: tuple) -> None:
            if not layer.calibrated or layer.observing:
                return
            fraction = args[0].detach().abs().amax().float() / (fp8.E4M3_MAX * layer.input_scale)
            self.seen[name] = fraction if name not in self.seen else torch.maximum(self.seen[name], fraction)
        return record

    def fractions(self) -> dict[str, float]:
        """Per layer, the largest fraction met since the last call (then starts again)."""
        out = {name: float(value) for name, value in self.seen.items()}
        self.seen = {}
        return out

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def summary(fractions: dict[str, float]) -> dict:
    """How many layers clamped (fraction > 1), the largest fraction and the worst layers."""
    worst = sorted(fractions.items(), key=lambda kv: -kv[1])[:WORST]
    return {"layers": len(fractions), "clamped_layers": sum(f > 1 for f in fractions.values()),
            "max_fraction": max(fractions.values(), default=0.0), "worst": [(n, round(f, 4)) for n, f in worst]}


def render(pipe, shape: dict, steps: int, device: torch.device) -> tuple[torch.Tensor, float]:
    """The final latents of one video of `shape` from the shared noise, and its seconds."""
    request = GenerationRequest(measure.PROMPT, seed=0, steps=steps, frames=shape["frames"], width=shape["width"],
                                height=shape["height"], guidance=shape["guidance"])
    noise = torch.randn((1, pipe.config.unet.in_dim, shape["frames"], shape["height"] // 8, shape["width"] // 8),
                        generator=torch.Generator().manual_seed(1234))
    measure.sync(device)
    started = time.perf_counter()
    latents = pipe.generate_batch([request], latents=noise)[0].latents.float()
    measure.sync(device)
    return latents, time.perf_counter() - started


def options():
    """The command line, each value checked, and a GPU with fp8 tensor cores, before any work."""
    made = probes.parser(__doc__)
    made.add_argument("--steps", type=int, default=20, help="DDIM steps a render (default 20)")
    made.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                      help="render only the shapes whose label holds one of these, e.g. ' g30' '1024×576'")
    made.add_argument("--deadline-s", type=float, default=None,
                      help="start no render after this many seconds (the findings so far are written)")

    def problems(args):
        low, high = LIMITS["steps"]
        yield None if low <= args.steps <= high else f"--steps {args.steps} is outside {low}–{high}"
        yield None if args.deadline_s is None or args.deadline_s > 0 else (
            f"--deadline-s {args.deadline_s:g} must be above 0")
        labels = [label(shape) for shape in shapes(ModelConfig())]
        for text in args.only or ():  # one that matches no shape would leave its renders out without a word
            yield None if any(text in name for name in labels) else (
                f"--only {text!r} is in no shape's label; they are: {', '.join(labels)}")
        yield fp8.unavailable("cuda") if torch.cuda.is_available() else (
            "it renders in fp8 on a CUDA GPU, and torch sees none here")
    return probes.parse(made, problems)


def main() -> None:
    args = options()
    device = torch.device("cuda")
    started = time.perf_counter()
    config = ModelConfig()
    states = random_state_dicts(config, seed=0, device="cuda")
    pipes = {"fp16": measure.load_ours(config, states, device, "float16")}
    pipes.update({name: measure.load_ours(config, states, device, "fp8", **opts) for name, opts in PRECISIONS.items()})
    del states
    for pipe in pipes.values():
        pipe.optimize(compile=False, cuda_graphs=False)
    watches = {name: Watch(pipes[name].unet) for name in PRECISIONS}
    found: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "steps": args.steps,
                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "headroom": fp8.HEADROOM,
                   "calibrated_at": label({"aspect": "1:1", "width": config.width, "height": config.height,
                                           "frames": config.frames, "guidance": 9.0}), "shapes": []}
    for shape in shapes(config):
        if args.only is not None and not any(text in label(shape) for text in args.only):
            continue
        if args.deadline_s is not None and time.perf_counter() - started > args.deadline_s:
            found.setdefault("skipped", []).append(label(shape))
            continue
        reference, seconds = render(pipes["fp16"], shape, args.steps, device)
        row = {"shape": label(shape), "fp16_s": round(seconds, 3)}
        for name in PRECISIONS:
            latents, seconds = render(pipes[name], shape, args.steps, device)
            row[name] = {"latents_vs_fp16": measure.rel_err(latents, reference), "s": round(seconds, 3),
                         **summary(watches[name].fractions())}
        found["shapes"].append(row)
        log.info("%s: %s", row["shape"], {n: (f"{row[n]['latents_vs_fp16']:.2e}", row[n]["clamped_layers"],
                                              round(row[n]["max_fraction"], 3)) for n in PRECISIONS})
        if args.out is not None:  # each row kept as it comes: a call cut short still returns the shapes done
            args.out.write_text(json.dumps(found, indent=1) + "\n")
    found["seconds"] = time.perf_counter() - started
    probes.report(found, args.out)


if __name__ == "__main__":
    main()
