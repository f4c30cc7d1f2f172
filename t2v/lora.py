"""Styles: LoRA adapters a pipeline keeps, one applied at a time — fused into the weights, or as unfused branches.

Fused (the default): each adapted weight W becomes W + s·B@A, written into the tensor the network computes with
(t2v.fast.live_weights finds it when the UNet is optimised) after a copy of W is kept, and only W's that a style
touches are copied. Switching styles or removing one copies W back bit for bit (no subtraction: fp32 round-off,
docs/lora.md). The fast path's compiled functions and CUDA graphs read the parameters where they lie, so they
stay valid and compute with the new weights, no recompiling. Keep torch._inductor's `freezing` off (its default):
it would bake the weights into the compiled code.

Unfused: a parametrization computes W + s·B@A at every use of W and leaves W untouched; removing it gives back
W itself. Plain path only: the fast path's fused projections hold no per-layer weight to wrap.

A style never changes in the middle of a video: set_lora during a render (from another thread, or a callback of it)
is refused (t2v.driver.Turns).
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from t2v.errors import LoraError
from t2v.fast import FusedAttention, TemporalConv2dBlock, live_weights
from t2v.weights.lora import LoraLayer, LoraWeights, read_lora

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (network, our state-dict key)


@dataclass(frozen=True)
class Active:
    """The style applied now."""

    name: str
    scale: float
    fused: bool


class Branches(nn.Module):
    """A parametrization: the weight plus Σ (user scale × alpha / rank)·B@A of its LoRA layers, at every use."""

    def __init__(self, layers: list[LoraLayer], scale: float, like: torch.Tensor) -> None:
        super().__init__()
        self.layers = [(layer.part, layer.shape, layer.scale * scale) for layer in layers]
        self.downs = nn.ParameterList([nn.Parameter(layer.down.to(like), requires_grad=False) for layer in layers])
        self.ups = nn.ParameterList([nn.Parameter(layer.up.to(like), requires_grad=False) for layer in layers])

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        for (part, shape, scale), down, up in zip(self.layers, self.downs, self.ups, strict=True):
            delta = (scale * (up.flatten(1) @ down.flatten(1))).reshape(shape)
            if part is not None:  # a third (q, k or v) of a fused in_proj weight
                delta = torch.cat([delta if i == part else torch.zeros_like(delta) for i in range(3)])
            weight = weight + delta
        return weight


def by_tensor(lora: LoraWeights | None) -> dict[Key, list[LoraLayer]]:
    """The layers of `lora` by the tensor they adapt (a fused in_proj gathers its q, k and v)."""
    groups: dict[Key, list[LoraLayer]] = {}
    for layer in lora.layers if lora is not None else ():
        groups.setdefault((layer.network, layer.key), []).append(layer)
    return groups


def summed_delta(layers: list[LoraLayer], scale: float, like: torch.Tensor) -> torch.Tensor:
    """`scale` × Σ (alpha / rank)·B@A over one tensor's layers, fp32 on its device, in the tensor's full shape."""
    total = torch.zeros(like.shape, device=like.device)
    for layer in layers:
        rows = total if layer.part is None else total.narrow(0, layer.part * layer.shape[0], layer.shape[0])
        rows.add_(layer.delta(like.device), alpha=scale)
    return total


def stored(tensors: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    """The tensor of `key` in a state dict, where an attached branch (torch's parametrization) keeps it renamed."""
    path, _, name = key.rpartition(".")
    return tensors[key] if key in tensors else tensors[f"{path}.parametrizations.{name}.original"]


def check_scale(scale: float) -> float:
    """`scale` as a plain float; LoraError unless it is a finite real number (NumPy's too; not a bool). Any finite
    scale is taken, as diffusers' fuse_lora takes it (negative ones included); the CLI and the bot's styles keep to
    t2v.config.LORA_SCALE_RANGE. A scale that takes a weight past its dtype's range is refused when the style is
    applied (`_write`); one that overflows only the activations is NonFiniteOutput at render."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise LoraError(f"LoRA scale {scale!r} must be a number (such as 0.8), got {type(scale).__name__}")
    if not math.isfinite(scale):
        raise LoraError(f"LoRA scale {scale} is not a finite number")
    return float(scale)


class Styles:
    """The LoRAs loaded into one pipeline (`loaded`, by name) and the one applied now (`active`, or None)."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.loaded: dict[str, LoraWeights] = {}
        self.active: Active | None = None
        self._saved: dict[Key, torch.Tensor] = {}  # the original of every weight a fused style changed
        self._branches: list[tuple[nn.Module, str]] = []  # (module, tensor name) of every parametrization

    def load(self, source: str | Path | Mapping[str, torch.Tensor], name: str | None = None) -> str:
        """Read and check a LoRA against this model (nothing applied yet); its name. A loaded name is replaced,
        and re-applied if it is the active style."""
        lora = read_lora(source, self.pipe.config, name)
        self.loaded[lora.name] = lora
        log.info("loaded LoRA %s from %s: %d layers (%s)", lora.name, lora.source, len(lora.layers),
                 ", ".join(sorted(lora.networks())))
        if self.active is not None and self.active.name == lora.name:
            self.apply(lora.name, self.active.scale, self.active.fused)
        return lora.name

    def unload(self, name: str) -> None:
        """Forget a loaded LoRA (removing it first if it is applied); LoraError naming the loaded ones if `name` is none
        of them (a misspelt name left the style applied, silently)."""
        if not isinstance(name, str) or name not in self.loaded:
            known = ", ".join(sorted(self.loaded)) or "none"
            raise LoraError(f"no LoRA named {name!r} is loaded (loaded: {known}), so none was unloaded; the style "
                            "applied is still applied (set_lora(None) removes it)")
        if self.active is not None and self.active.name == name:
            self.apply(None)
        self.loaded.pop(name, None)

    def apply(self, name: str | None, scale: float = 1.0, fused: bool = True) -> None:
        """Apply the loaded LoRA `name` × `scale` in place of the active one (None: none). Everything refused is
        refused before a weight changes; a failure while writing (out of memory) leaves no style at all rather than
        half of two, and `active` None says so."""
        lora = self._get(name)
        scale = check_scale(scale)
        if not isinstance(fused, bool):  # fused=None was taken as False: branches, the slow path, unasked
            raise LoraError(f"fused={fused!r} must be True (written into the weights) or False (unfused branches)")
        if lora is not None and not fused and self.optimised():
            raise LoraError("unfused LoRA branches need the plain UNet, and this pipeline is optimised (its "
                            "projections are fused); apply the style fused (set_lora(name, scale))")
        if lora is not None and fused:
            self._check_fusable(lora)
        with self.pipe.turns("set_lora", LoraError):  # never in the middle of a render
            started = time.perf_counter()
            self._switch(lora, scale, fused)
            self.pipe.synchronize()
        log.info("style %s (scale %g, %s) applied in %.3f s", name, scale, "fused" if fused else "branches",
                 time.perf_counter() - started)

    def _switch(self, lora: LoraWeights | None, scale: float, fused: bool) -> None:
        """Write or attach `lora` × `scale` in place of the active style; a failure partway leaves none (`_recover`)."""
        try:
            self._detach()
            self._write(lora if fused else None, scale)
            if lora is not None and not fused:
                self._attach(lora, scale)
        except BaseException as exc:
            error = self._recover(None if lora is None else lora.name, exc)
            if error is exc:
                raise
            raise error from exc
        self.active = Active(lora.name, scale, fused) if lora is not None else None

    def optimised(self) -> bool:
        """Whether the UNet has the fast path's fused modules (no per-layer projection weights)."""
        return any(isinstance(m, FusedAttention | TemporalConv2dBlock) for m in self.pipe.unet.modules())

    def check_optimisable(self) -> None:
        """LoraError if unfused branches are attached: optimising would bake them into the fused projections."""
        if self._branches:
            raise LoraError(f"the style {self.active.name} is attached as unfused branches; remove it "
                            "(set_lora(None)) or apply it fused before optimising")

    def _get(self, name: str | None) -> LoraWeights | None:
        if name is not None and name not in self.loaded:
            known = ", ".join(sorted(self.loaded)) or "none"
            raise LoraError(f"no LoRA named {name!r} is loaded (loaded: {known}); load it with load_lora first")
        return None if name is None else self.loaded[name]

    def weights(self, network: str) -> dict[str, torch.Tensor]:
        """Our keys → the tensors the network computes with (views of the fused ones on the fast path)."""
        if network == "unet":
            return live_weights(self.pipe.unet)
        return self.pipe.text_encoder.state_dict(keep_vars=True)

    def _check_fusable(self, lora: LoraWeights) -> None:
        """LoraError if `lora` adapts an fp8 (e4m3) weight: a delta added there would be lost to its 3 mantissa bits."""
        weights = {network: self.weights(network) for network in lora.networks()}
        fp8 = [key for key in by_tensor(lora) if stored(weights[key[0]], key[1]).dtype.itemsize == 1]
        if fp8:
            network, key = fp8[0]
            raise LoraError(f"a style cannot be fused into the fp8 weight {key} of the {network} ({len(fp8)} such); "
                            "load the model in bf16, fp16 or fp32 to use styles")

    def _recover(self, name: str | None, exc: BaseException) -> BaseException:
        """After a switch failed partway: every weight back to its original and no branch attached, so the UNet holds
        no style rather than parts of two; the error to raise (out of memory and interrupts as they are, for callers
        that handle them by type; anything else as a LoraError naming the style)."""
        was = self.active
        self._detach()
        self._restore()
        self.active = None
        log.warning("switching to style %s failed (%s: %s); every weight is restored, no style is applied (it was "
                    "%s)", name, type(exc).__name__, exc, was.name if was is not None else "none")
        if not isinstance(exc, Exception) or isinstance(exc, torch.cuda.OutOfMemoryError | LoraError):
            return exc
        return LoraError(f"applying the style {name!r} failed ({type(exc).__name__}: {exc}); the model's own "
                         "weights are restored and no style is applied")

    @torch.no_grad()
    def _restore(self) -> None:
        """Copy every saved original back (a copy into place allocates nothing) and forget the copies."""
        weights = {network: self.weights(network) for network in {network for network, _ in self._saved}}
        for (network, key), original in self._saved.items():
            weights[network][key].copy_(original)
        self._saved.clear()

    @torch.no_grad()
    def _write(self, lora: LoraWeights | None, scale: float = 1.0) -> None:
        """Make every weight its original + the delta of `lora` × `scale`: restore those it does not adapt, keep a
        copy of each it adapts for the first time. One tensor at a time, so the extra memory is one delta."""
        groups = by_tensor(lora)
        touched = self._saved.keys() | groups.keys()
        weights = {network: self.weights(network) for network in {network for network, _ in touched}}
        finite: dict[Key, torch.Tensor] = {}  # per adapted tensor, on its device: read once, after the loop
        for key in touched:
            view = weights[key[0]][key[1]]
            original = self._saved.get(key)
            if original is None:
                original = self._saved[key] = view.clone()
            if key in groups:
                view.copy_((original.float() + summed_delta(groups[key], scale, view)).to(view.dtype))
                finite[key] = torch.isfinite(view).all()
            else:
                view.copy_(original)
                del self._saved[key]
        overflowed = [key for key, ok in finite.items() if not ok]  # one host sync a tensor, at a style switch only
        if overflowed:
            network, key = overflowed[0]
            dtype = weights[network][key].dtype
            raise LoraError(f"the style {lora.name!r} at scale {scale:g} takes {len(overflowed)} of its weights past "
                            f"what {dtype} holds (inf or NaN; first {key} of the {network}); lower its scale, or "
                            "use a LoRA whose values are not this large")

    def _attach(self, lora: LoraWeights, scale: float) -> None:
        """One parametrization per adapted tensor (a fused in_proj gathers its q, k and v layers)."""
        for (network, key), layers in by_tensor(lora).items():
            path, _, tensor = key.rpartition(".")
            module = getattr(self.pipe, network).get_submodule(path)
            parametrize.register_parametrization(module, tensor, Branches(layers, scale, getattr(module, tensor)))
            self._branches.append((module, tensor))

    def _detach(self) -> None:
        """Remove every parametrization, giving each module back its own untouched weight."""
        while self._branches:
            module, tensor = self._branches.pop()
            parametrize.remove_parametrizations(module, tensor, leave_parametrized=False)
