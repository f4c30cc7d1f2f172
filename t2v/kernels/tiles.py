"""What the Triton GEMM kernels (conv3x3, geglu) share: the launch order of their output tiles."""

from __future__ import annotations

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: no kernel runs
    triton = None

if triton is not None:
    @triton.jit
    def grouped(pid, tiles_m, tiles_n, GROUP: tl.constexpr):
        """(row tile, column tile) of program `pid`, in groups of GROUP row tiles that take each column of weights
        in turn: the weights' tiles are read from L2 by a group at a time."""
        per_group = GROUP * tiles_n
        first_m = (pid // per_group) * GROUP
        group_rows = min(tiles_m - first_m, GROUP)
        return first_m + (pid % per_group) % group_rows, (pid % per_group) // group_rows
