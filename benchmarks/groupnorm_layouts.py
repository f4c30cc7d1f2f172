"""GroupNorm+SiLU on the UNet's channels-last activations, five ways, each compiled by inductor and timed alone.

perf-notes row 79's profiles: at 24×576×320 the GroupNorm kernels inductor makes for channels-last activations take
≈ 0.8 ms a launch on an 88 MB tensor, ≈ 15× what its bytes need, 8.9 ms of a 138 ms call. Asked here, before any
change to the model: (a) `F.group_norm` + SiLU on the channels-last [b, c, f, h·w] view the temporal convolutions
take (what the model runs), (b) the same on a contiguous NCHW copy (the layout GroupNorm's groups lie in), (c) the
statistics written out as sums over a [b, f·h·w, groups, c / groups] view of the channels-last memory, then the
normalising pass pointwise, (d) the statistics in two stages: per-channel partial sums over blocks of rows (each read
a whole pixel's channels, contiguous), then the blocks and each group's channels summed, (e) the fast path's own
module, t2v.fast.RowsGroupNorm: (d) with each value less its channel's first (rows 80 and 81). Each form's output is
checked against (a) in fp32. Prints one JSON object.

    python benchmarks/groupnorm_layouts.py [--shapes zeroscope standard batch16]

(f·h·w is divisible by two_stage's 64 blocks in every shape here.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/groupnorm_layouts.py` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from t2v.fast import RowsGroupNorm  # noqa: E402

SHAPES = {  # (b, c, f, h·w) of the top level's temporal-conv GroupNorm input
    "zeroscope": (2, 320, 24, 72 * 40),
    "standard": (2, 320, 16, 32 * 32),
    "batch16": (32, 320, 16, 32 * 32),
}
GROUPS, EPS = 32, 1e-5


def library(x, weight, bias):
    return F.silu(F.group_norm(x, GROUPS, weight, bias, EPS))


def by_rows(x, weight, bias):
    """Statistics from a [b, rows, groups, c/groups] view of channels-last memory, then one pointwise pass."""
    b, c, f, p = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, f * p, GROUPS, c // GROUPS).float()  # a view of channels-last memory
    mean = rows.mean(dim=(1, 3), keepdim=True)
    var = (rows * rows).mean(dim=(1, 3), keepdim=True) - mean * mean
    y = (rows - mean) * torch.rsqrt(var + EPS)
    y = y.reshape(b, f, p, c) * weight.float() + bias.float()
    return F.silu(y).to(x.dtype).permute(0, 3, 1, 2)


def two_stage(x, weight, bias, blocks: int = 64):
    """Per-channel partial sums over `blocks` blocks of rows first (reads along whole rows), then the groups'."""
    b, c, f, p = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, blocks, f * p // blocks, c).float()  # a view of channels-last memory
    sums, squares = rows.sum(dim=2), (rows * rows).sum(dim=2)  # [b, blocks, c]
    count = f * p * (c // GROUPS)
    mean = sums.view(b, blocks, GROUPS, -1).sum(dim=(1, 3)) / count  # [b, groups]
    var = squares.view(b, blocks, GROUPS, -1).sum(dim=(1, 3)) / count - mean * mean
    scale = torch.rsqrt(var + EPS).repeat_interleave(c // GROUPS, dim=1) * weight.float()  # [b, c]
    shift = bias.float() - mean.repeat_interleave(c // GROUPS, dim=1) * scale
    y = rows.reshape(b, f * p, c) * scale[:, None, :] + shift[:, None, :]
    return F.silu(y).to(x.dtype).reshape(b, f, p, c).permute(0, 3, 1, 2)


def fast_path(weight, bias):
    """What the fast path runs, with SiLU: t2v.fast.RowsGroupNorm (row 81: per-channel sums of each value less its
    channel's first, over 64 blocks of rows) with these parameters; called as the other forms are."""
    norm = torch.nn.GroupNorm(GROUPS, weight.numel(), EPS, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        norm.weight.copy_(weight), norm.bias.copy_(bias)
    module = RowsGroupNorm(norm).requires_grad_(False)
    return lambda x, _weight, _bias: F.silu(module(x))


def time_ms(fn, *args, repeats: int = 50) -> float:
    for _ in range(3):
        fn(*args)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn(*args)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: it times compiled kernels on a CUDA GPU, and torch sees none here", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    for name in args.shapes:
        b, c, f, p = SHAPES[name]
        x = torch.randn(b, f, p, c, device="cuda", dtype=torch.float16).permute(0, 3, 1, 2)  # channels-last
        weight = torch.randn(c, device="cuda", dtype=torch.float16)
        bias = torch.randn(c, device="cuda", dtype=torch.float16)
        exact = library(x.float(), weight.float(), bias.float())
        row = {"shape": [b, c, f, p], "mbytes": x.numel() * 2 / 1e6}
        forms = {"channels_last": (library, x), "nchw": (library, x.contiguous()), "by_rows": (by_rows, x),
                 "two_stage": (two_stage, x), "fast_path": (fast_path(weight, bias), x)}
        for form, (fn, inp) in forms.items():
            compiled = torch.compile(fn, fullgraph=True)
            with torch.no_grad():
                out = compiled(inp, weight, bias)
                ms = time_ms(compiled, inp, weight, bias)
            row[form] = {"ms": round(ms, 4), "gb_s": round(2 * row["mbytes"] / ms, 1),
                         "error": float((out.float() - exact).abs().max())}
        results[name] = row
        print(json.dumps({name: row}), flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
