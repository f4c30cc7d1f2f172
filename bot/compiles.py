"""Compiles off the rendering threads: one background thread per process builds the UNet's compiled shapes.

A GPU worker that meets a shape with nothing compiled renders it on the eager path at once and asks for that shape
here (`requester`); at start each worker also queues the shapes expected next (`warm`: the default /video shape,
then the other aspects). The thread compiles one shape at a time, shapes a job asked for before speculative ones,
and the worker swaps each in at its next call of that shape (t2v.compiled.FastUNet). Nothing waits for a compile;
`status()` says what is compiled, compiling and waiting, for /healthz and the log. Runs on the worker's side
(threads of this process, or a Ray actor's process); never touches the database, Discord or the event loop.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DEMAND, WARM = 0, 1  # priorities: a shape a job is rendering eager now, before a shape expected later


def label(shape: Any) -> str:
    """A UNet call shape as videos × frames × width×height pixels ('1×16×256×256')."""
    rows, _, frames, height, width = shape[0]
    return f"{rows // 2}×{frames}×{width * 8}×{height * 8}"


@dataclass(order=True)
class _Item:
    priority: int
    seq: int
    device: str = field(compare=False)
    unet: Any = field(compare=False)  # a t2v.compiled.FastUNet
    shape: Any = field(compare=False)


class BackgroundCompiles:
    """One daemon thread compiling FastUNet shapes in priority order; each (device, shape) once."""

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[_Item] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._queued: dict[tuple[str, Any], int] = {}  # (device, shape) -> its best queued priority
        self._done: dict[tuple[str, Any], bool] = {}  # (device, shape) -> compiled (True) or failed (False)
        self._current: tuple[str, Any] | None = None
        self.compile_s = 0.0  # seconds spent compiling, all shapes together
        self._thread: threading.Thread | None = None
        self._stopping = False

    def requester(self, unet: Any, device: str) -> Callable[[Any], None]:
        """The `request_compile` for a worker's FastUNet: compile a shape a job is rendering eager, first."""
        return lambda shape: self._put(unet, device, shape, DEMAND)

    def warm(self, unet: Any, device: str, shapes: list[Any]) -> None:
        """Queue shapes expected soon, in order, behind anything a job asks for."""
        for shape in shapes:
            self._put(unet, device, shape, WARM)

    def status(self) -> dict[str, Any]:
        """Shapes compiled, compiling, waiting and failed (labelled per `label`, with the device when several)."""
        with self._lock:
            current = [self._current] if self._current else []
            devices = {device for device, _ in [*self._done, *self._queued, *current]}
            name = (lambda key: label(key[1])) if len(devices) <= 1 else (lambda key: f"{key[0]} {label(key[1])}")
            waiting = sorted(self._queued.items(), key=lambda item: item[1])
            return {"compiled": [name(key) for key, ok in self._done.items() if ok],
                    "compiling": name(self._current) if self._current else None,
                    "waiting": [name(key) for key, _ in waiting],
                    "failed": [name(key) for key, ok in self._done.items() if not ok],
                    "compile_s": round(self.compile_s, 1)}

    @property
    def busy(self) -> bool:
        """Whether a compile is under way now."""
        return self._current is not None

    def stop(self) -> None:
        """Forget the waiting shapes and end the thread after the compile under way (a process simply exits)."""
        with self._lock:
            self._queued.clear()
            self._stopping = True
        self._queue.put(_Item(-1, -1, "", None, None))  # wakes the thread

    def _put(self, unet: Any, device: str, shape: Any, priority: int) -> None:
        key = (device, shape)
        with self._lock:
            done = self._done.get(key)
            if done is False or (done and unet.compiled(shape)):
                return  # failed (it stays eager), or compiled and still kept
            if self._stopping or self._queued.get(key, priority + 1) <= priority or key == self._current:
                return
            self._queued[key] = priority
            self._queue.put(_Item(priority, next(self._seq), device, unet, shape))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="compile", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            key = (item.device, item.shape)
            with self._lock:
                if self._stopping:
                    return
                if self._queued.get(key) != item.priority:
                    continue  # superseded by the same shape at a better priority, or done
                del self._queued[key]
                self._current = key
            ok = self._compile(item)
            with self._lock:
                self._current = None
                self._done[key] = ok

    def _compile(self, item: _Item) -> bool:
        """Compile one shape on its worker's GPU; never raises (a failure leaves the shape eager)."""
        started = time.perf_counter()
        try:
            _use_device(item.device)
            ok = bool(item.unet.compile_shape(item.shape))
        except Exception:
            log.exception("compiling %s on %s failed", label(item.shape), item.device)
            ok = False
        seconds = time.perf_counter() - started
        self.compile_s += seconds
        log.info("%s %s on %s in %.1f s; still waiting: %d", "compiled" if ok else "could not compile",
                 label(item.shape), item.device, seconds, self._queue.qsize())
        return ok


def _use_device(device: str) -> None:
    """Make `device` this thread's current GPU (the compile's inputs and kernels land on the worker's GPU)."""
    if device.startswith("cuda:"):
        import torch  # lazily: this module is imported where torch is not needed

        torch.cuda.set_device(device)


COMPILES = BackgroundCompiles()  # the process's compile thread, shared by its GPU workers
