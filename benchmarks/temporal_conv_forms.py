"""The temporal 3×1 convolutions of one guided UNet call, each computed in several equal forms, timed on the GPU.

cuDNN runs the UNet's temporal convolutions (88 a call) at half a GEMM's rate of the same size (docs/perf-notes.md,
"Where the time goes now": 4.9 against 2.5 ms a call). Three routes through a GEMM lost in the video (rows 27, 29,
35). Before another kernel is written, this asks whether the libraries already have a faster route when asked in
another form, with nothing compiled:

* `conv2d`: what the fast path runs: a 3×1 Conv2d over [b, c, f, h·w], channels-last;
* `conv3d`: the model's own 3×1×1 Conv3d over [b, c, f, h, w], channels-last (3-D);
* `conv1d-dilated`: a Conv1d of kernel 3 over [b, c, f·h·w] with dilation and padding h·w (the same sums, zero
  outside the clip), channels-last;
* `gemms`: three cuBLAS GEMMs accumulating into one output (the centre tap with the bias, then each neighbouring
  frame's tap added in place: `baddbmm_` over the videos, so no frame crosses into another video);
* `equal-gemm`: one GEMM of the same M×K×N: the rate a convolution kernel could reach on the shape.

Each form is captured in a CUDA graph (as the video runs it) and timed by replaying; its error against the fp32
convolution is reported beside cuDNN's. Timed alone like this, the three GEMMs were the fastest form on every shape
(row 47), yet in the compiled video they lost (row 49): there cuDNN's temporal convolutions took 3.06 ms a call, not
the 4.06 timed here, and the GEMMs 3.27. A form that wins here is a candidate, not a result.

Shapes: the standard video's (2 × 16 frames, latents 32², 16², 8², 4²), the 4-video batch's and the 24×576×320
video's.

GPU:  python benchmarks/temporal_conv_forms.py --out OUT/temporal_conv_forms.json
CPU:  python benchmarks/temporal_conv_forms.py --device cpu --tiny   (the forms' equality only; no graphs)
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/temporal_conv_forms.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks import probes  # noqa: E402
from t2v import preflight  # noqa: E402

log = logging.getLogger("temporal_conv_forms")
CHANNELS = (320, 640, 1280, 1280)  # the UNet's channels at latent scales 1, 1/2, 1/4, 1/8
CALLS = (20, 20, 20, 28)  # temporal convolutions a call at each scale (5, 5, 5 and 7 blocks of 4)
WORKS = {"standard": (2, 16, 32, 32), "batch4": (8, 16, 32, 32), "zeroscope": (2, 24, 40, 72)}  # (b, f, h, w) latents
TINY = {"tiny": (2, 3, 4, 4)}
Form = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x [b, c, f, p], weight, bias) → out


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, weight, bias, padding=(1, 0))


def conv3d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.conv3d(x.unsqueeze(-1), weight.unsqueeze(-1), bias, padding=(1, 0, 0)).squeeze(-1)


def conv1d_dilated(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    b, c, f, p = x.shape
    out = F.conv1d(x.reshape(b, c, f * p), weight.squeeze(-1), bias, padding=p, dilation=p)
    return out.view(b, -1, f, p)


def gemms(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    b, c, f, p = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, f * p, c)  # a view when x is channels-last
    taps = weight.squeeze(-1).permute(2, 1, 0)  # [3, c_in, c_out]
    out = torch.addmm(bias, rows.reshape(b * f * p, c), taps[1]).view(b, f * p, -1)
    if f > 1:
        out[:, p:].baddbmm_(rows[:, :-p], taps[0].expand(b, *taps[0].shape))  # frame j += frame j − 1's tap 0
        out[:, :-p].baddbmm_(rows[:, p:], taps[2].expand(b, *taps[2].shape))  # frame j += frame j + 1's tap 2
    return out.view(b, f, p, -1).permute(0, 3, 1, 2)


FORMS: dict[str, Form] = {"conv2d": conv2d, "conv3d": conv3d, "conv1d-dilated": conv1d_dilated, "gemms": gemms}


def time_ms(device: torch.device, fn: Callable[[], object], inner: int = 10, replays: int = 20) -> float:
    """Milliseconds of one `fn()`: on a GPU replayed from a CUDA graph of `inner` calls (no launch cost, as in the
    video), elsewhere by the wall clock."""
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        return 1e3 * (time.perf_counter() - start) / inner
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up off the capture: cuDNN's algorithm search, cuBLAS's workspace
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(inner):
            fn()
    graph.replay()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / (replays * inner)


def shape_row(device: torch.device, b: int, f: int, p: int, c: int) -> dict:
    """Every form's time and error against the fp32 convolution on one shape (and the equal GEMM's time)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, f, p, generator=g).to(device, torch.float16).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(c, c, 3, 1, generator=g) * (3 * c) ** -0.5).to(device, torch.float16)
    weight = weight.contiguous(memory_format=torch.channels_last)
    bias = torch.randn(c, generator=g).to(device, torch.float16)
    exact = conv2d(x.float(), weight.float(), bias.float())
    scale = float(exact.abs().max())
    row: dict = {"tflop": 2 * b * f * p * 3 * c * c / 1e12}
    for name, form in FORMS.items():
        try:
            out = form(x, weight, bias)
            row[f"{name} error"] = float((out.float() - exact).abs().max()) / scale
            row[f"{name} ms"] = time_ms(device, lambda form=form: form(x, weight, bias))
        except Exception as exc:  # a form the library refuses on this shape leaves the others measured
            log.exception("%s failed on b=%d f=%d p=%d c=%d", name, b, f, p, c)
            row[f"{name} failed"] = repr(exc)[:300]
    a = torch.randn(b * f * p, 3 * c, device=device, dtype=torch.float16)
    w = torch.randn(3 * c, c, device=device, dtype=torch.float16)
    row["equal-gemm ms"] = time_ms(device, lambda: torch.mm(a, w))
    return row


def measure(device: torch.device, works: dict[str, tuple[int, int, int, int]]) -> dict:
    """Per work: each shape's row, and each form's milliseconds summed over one guided UNet call."""
    found = {}
    for work, (b, f, h, w) in works.items():
        shapes, totals = [], Counter()
        for level, (c, calls) in enumerate(zip(CHANNELS, CALLS, strict=True)):
            p = max(h >> level, 1) * max(w >> level, 1)
            row = shape_row(device, b, f, p, c)
            shapes.append({"b": b, "f": f, "p": p, "c": c, "calls": calls, **row})
            totals.update({k: calls * v for k, v in row.items() if k.endswith(" ms")})
            log.info("%s b=%d f=%d p=%d c=%d: %s", work, b, f, p, c,
                     ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.endswith(" ms")))
        found[work] = {"ms_per_unet_call": {k: round(v, 4) for k, v in totals.items()}, "shapes": shapes}
    return found


def main() -> None:
    made = probes.parser(__doc__)
    made.add_argument("--device", default="cuda:0")
    made.add_argument("--tiny", action="store_true", help="one tiny shape (a CPU check of the forms' equality)")
    args = probes.parse(made, lambda a: [preflight.device("--device", a.device)])
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # as the fast path sets it
    found = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
             "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
             **measure(device, TINY if args.tiny else WORKS)}
    probes.report(found, args.out)


if __name__ == "__main__":
    main()
