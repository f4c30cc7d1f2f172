"""Compiles off the rendering threads: one background thread per process builds the UNet's compiled shapes.

A GPU worker that meets a shape with nothing compiled renders it on the eager path at once and tells this thread at
every such UNet call (`requester`); at start each worker also queues the shapes expected first (`warm`: the default
/video shape, BATCH_MAX of it, then the other aspects), each with a head start. The thread compiles one shape at a
time, always the one with the most expected use — the eager UNet calls it has cost so far plus its head start — and
the worker swaps each in at its next call of that shape (t2v.compiled.FastUNet). A shape's VAE decoder compiles
only once no UNet shape waits, in the order the UNets compiled: a compiled UNet saves ≈ 1.3 s of a standard video, a
compiled decoder 24 ms, and each takes the thread for minutes and half a minute. Nothing waits for a compile;
`status()` says what is compiled, compiling and waiting, for /healthz and the log. It runs on the workers' side
(threads of this process, or a Ray actor's process); never touches the database, Discord or the event loop.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

WARM_HEAD_START = 200.0  # the first warm shape's head start, in UNet calls (4 default videos); each next: 75% of it
WARM_DECAY = 0.75
# While a compile runs (pure Python for seconds to minutes), the GIL is handed over this often instead of every 5 ms:
# a rendering thread gives the GIL up at every torch op and waits up to a whole interval for it each time (on the
# H200, eager steps ran 40x slower during a compile at 5 ms; a new shape's first call took 5–7.5 s at 100 µs and
# 3.1–4.6 s at 5 µs against 3.4 s with no compile, the compile itself no slower: docs/perf-notes.md rows 15, 54, 55).
COMPILE_SWITCH_INTERVAL_S = 5e-6


def label(shape: Any) -> str:
    """A UNet call shape as guided videos × frames × width×height pixels ('1×16×256×256'; two unguided videos make
    one guided video's shape), or with an odd row count as unguided ones ('1×16×256×256 unguided')."""
    rows, _, frames, height, width = shape[0]
    size = f"{frames}×{width * 8}×{height * 8}"
    return f"{rows}×{size} unguided" if rows % 2 else f"{rows // 2}×{size}"


@dataclass
class _Waiting:
    """A shape waiting to compile: its expected use so far, and what compiles it."""

    score: float
    seq: int
    unet: Any  # a t2v.compiled.FastUNet


class BackgroundCompiles:
    """One daemon thread compiling FastUNet shapes, most expected use first; each (device, shape) once."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._seq = itertools.count()
        self._waiting: dict[tuple[str, Any], _Waiting] = {}
        self._decoders: dict[tuple[str, Any], Any] = {}  # (device, shape) -> its FastUNet, in the UNets' order
        self._done: dict[tuple[str, Any], tuple[bool, Any]] = {}  # (device, shape) -> (compiled, its FastUNet)
        self._current: tuple[str, Any] | None = None
        self._current_decoder = False  # whether the compile under way is `_current`'s decoder
        self.compile_s = 0.0  # seconds spent compiling, all shapes together
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.after_compile: Callable[[], None] | None = None  # run by the thread after each compile (the cache's
        # bound: bot.gpu.source.CacheBudget)

    def requester(self, unet: Any, device: str) -> Callable[[Any], None]:
        """The `request_compile` for a worker's FastUNet: one more eager UNet call of `shape`."""
        return lambda shape: self._add(unet, device, shape, 1.0)

    def warm(self, unet: Any, device: str, shapes: list[Any]) -> None:
        """Queue the shapes expected first, with head starts falling in their order."""
        for i, shape in enumerate(shapes):
            self._add(unet, device, shape, WARM_HEAD_START * WARM_DECAY**i)

    @property
    def busy(self) -> bool:
        """Whether a compile is under way now."""
        return self._current is not None

    def status(self) -> dict[str, Any]:
        """Shapes compiled, compiling, waiting (next first) and failed, as `label`s (with the device when several);
        the shapes whose decoder waits to compile."""
        with self._changed:
            current = [self._current] if self._current else []
            devices = {device for device, _ in [*self._done, *self._waiting, *current]}
            name = (lambda key: label(key[1])) if len(devices) <= 1 else (lambda key: f"{key[0]} {label(key[1])}")
            compiling = None if not self._current else \
                f"{name(self._current)} decoder" if self._current_decoder else name(self._current)
            return {"compiled": [name(key) for key, (ok, unet) in self._done.items() if ok and unet.compiled(key[1])],
                    "compiling": compiling,
                    "waiting": [name(key) for key in sorted(self._waiting, key=self._rank)],
                    "decoders_waiting": [name(key) for key in self._decoders],
                    "failed": [name(key) for key, (ok, _) in self._done.items() if not ok],
                    "compile_s": round(self.compile_s, 1)}

    def stop(self) -> None:
        """Forget the waiting shapes and end the thread after the compile under way (a process simply exits)."""
        with self._changed:
            self._waiting.clear()
            self._decoders.clear()
            self._stopping = True
            self._changed.notify_all()

    def _add(self, unet: Any, device: str, shape: Any, score: float) -> None:
        key = (device, shape)
        with self._changed:
            done = self._done.get(key, (None, None))[0]
            if self._stopping or key == self._current or done is False or (done and unet.compiled(shape)):
                return  # failed (it stays eager), compiled and still kept, or compiling now
            waiting = self._waiting.get(key)
            if waiting is None:
                self._waiting[key] = _Waiting(score, next(self._seq), unet)
            else:
                waiting.score += score
            self._changed.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="compile", daemon=True)
                self._thread.start()

    def _rank(self, key: tuple[str, Any]) -> tuple[float, int]:
        waiting = self._waiting[key]
        return -waiting.score, waiting.seq

    def _serve(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting or self._decoders or self._stopping)
                if self._stopping:
                    return
                decoder = not self._waiting  # a UNet shape first, whenever one waits
                if decoder:
                    key = next(iter(self._decoders))
                    unet = self._decoders.pop(key)
                else:
                    key = min(self._waiting, key=self._rank)
                    unet = self._waiting.pop(key).unet
                self._current, self._current_decoder = key, decoder
            ok = self._compile(unet, *key, decoder=decoder)
            self._after_compile()
            with self._changed:
                self._current = None
                if not decoder:
                    self._done[key] = ok, unet
                    if ok and unet.decoder is not None and not self._stopping:
                        self._decoders[key] = unet

    def _after_compile(self) -> None:
        """`after_compile`, whose failure is logged and leaves the thread compiling."""
        if self.after_compile is None:
            return
        try:
            self.after_compile()
        except Exception:
            log.exception("after a compile: %s failed", getattr(self.after_compile, "__qualname__", "the hook"))

    def _compile(self, unet: Any, device: str, shape: Any, decoder: bool = False) -> bool:
        """Compile one shape's UNet, or its decoder, on its worker's GPU; never raises (a failure leaves it eager)."""
        started = time.perf_counter()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, COMPILE_SWITCH_INTERVAL_S))
        what = f"{label(shape)} decoder" if decoder else label(shape)
        try:
            _use_device(device)
            if decoder:
                unet.compile_decoder(shape)  # a chunk shape that fails stays eager, logged there
                ok = True
            else:
                ok = bool(unet.compile_shape(shape, decoder=False))
        except Exception:
            log.exception("compiling %s on %s failed", what, device)
            ok = False
        finally:
            sys.setswitchinterval(interval)
        seconds = time.perf_counter() - started
        self.compile_s += seconds
        log.info("%s %s on %s in %.1f s; waiting: %s", "compiled" if ok else "could not compile", what,
                 device, seconds, ", ".join(self.status()["waiting"]) or "nothing")
        return ok


def _use_device(device: str) -> None:
    """Make `device` this thread's current GPU (the compile's inputs and kernels land on the worker's GPU)."""
    if device.startswith("cuda:"):
        import torch  # lazily: this module is imported where torch is not needed

        torch.cuda.set_device(device)


COMPILES = BackgroundCompiles()  # the process's compile thread, shared by its GPU workers
