"""The benchmark's sequence of runs (diffusers, our plain and fast paths, profile, fp32 check, kernel checks,
fast-path variants, cold start); `plan` says which of them a run's flags select."""

from __future__ import annotations

import gc
import logging
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch

from t2v.bench import KERNEL_CHECKS, kernel_checks, measure, twin
from t2v.compiled import FastUNet, example_inputs, video_shape
from t2v.fast import channels_last
from t2v.kernels import fp8, temporal_attention
from t2v.sampling import GuidedDenoiser
from t2v.weights.export import write_export

log = logging.getLogger(__name__)

# kernel-name fragments → category, checked in this order (cuDNN conv kernels also contain "gemm")
CATEGORIES = (("attention", ("flash", "fmha", "attention", "mha")),
              ("convolution", ("conv", "fprop", "implicit", "cudnn", "winograd")),
              ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "splitk")),
              ("fused (triton)", ("triton",)),
              ("copy / layout", ("copy", "transpose", "elementwise", "nchw", "nhwc", "cat", "index")))
INDUCTOR_FUSED = ("triton_poi_", "triton_per_", "triton_red_")  # inductor's pointwise and reduction kernels (its
# templates, "triton_tem_", are GEMMs and convolutions)
OP_FAMILIES = (("attention", "attention"), ("convolution", "convolution"), ("matmul", "mm"))
# --variants: our compiled path again with one opt-in change each (its own pipeline and compile), on the first
# work size: (dtype, the optimize() options); "bf16" is the plain eager pipeline in bf16, for the precision table
# (the temporal attention's default is "auto": the Triton kernel on problems large enough; "triton-attention" uses
# it on every problem, "sdpa-attention" on none, as before 2026-12-02; "autotune": inductor's max-autotune,
# Triton templates timed against cuBLAS and cuDNN per GEMM and convolution; "fp8" the default path at dtype fp8, its
# static scales calibrated at load, "fp8-row" and "fp8-tensor" with t2v.kernels.fp8's per-call scalings instead,
# "fp8-all" with the attention output projections in fp8 too, "fp8-conv" with the 3×3 convolutions in fp8 too
# through t2v.kernels.conv3x3; "triton-ff" runs the fp16 feed-forward's first GEMM and its GEGLU gate as
# t2v.kernels.geglu's one kernel, as the default does for fp8's, and "fp8-plain-ff" fp8's as cuBLAS's GEMM and
# inductor's gate pass, as the default does for fp16's; "library-groupnorm" the UNet's GroupNorms as torch's, as before
# 2026-12-07, not as t2v.fast.RowsGroupNorm)
VARIANTS = {"triton-attention": ("float16", {"temporal_attention": "triton"}),
            "sdpa-attention": ("float16", {"temporal_attention": "sdpa"}),
            "triton-ff": ("float16", {"feedforward": "triton"}), "fp8-plain-ff": ("fp8", {"feedforward": "plain"}),
            "autotune": ("float16", {"autotune": True}),
            "fp8": ("fp8", {}), "fp8-row": ("fp8", {}), "fp8-tensor": ("fp8", {}), "fp8-all": ("fp8", {}),
            "fp8-conv": ("fp8", {}),
            "library-groupnorm": ("float16", {"groupnorm": "library"}),
            "bf16": ("bfloat16", None)}
FP8_OPTIONS = {"fp8-row": {"fp8_scaling": "row"}, "fp8-tensor": {"fp8_scaling": "tensor"},
               "fp8-all": {"fp8_keep": ()}, "fp8-conv": {"fp8_convs": True}}
# the fp8 variants' load options (t2v.loader.assemble)


def plan(args, device: torch.device) -> list[str]:
    """The sections this run measures, in order: what its flags select on this device."""
    steps = ["flops"]
    if not args.no_diffusers:
        steps.append("diffusers eager")
        if args.diffusers_compile == "on" or (args.diffusers_compile == "auto" and device.type == "cuda"):
            steps.append("diffusers compiled")
    steps += ["ours eager"] if args.eager else []
    steps += [f"ours compiled {name}" for name in args.configs or measure.DEFAULT_CONFIGS if args.fast]
    if device.type == "cuda" and args.profile and args.fast:  # these two and fp32 follow the compiled runs
        steps += ["memory", "profile"]
    if args.fp32_check and args.fast:
        steps.append("fp32")
    if args.kernels is not None:
        steps.append("kernels")
    steps += [f"variant {name}" for name in args.variants]
    if args.cold_start:
        steps.append("cold start")
    return steps


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _as_run(pipe, work, impl: str) -> str:
    """`impl`, said to have run eager where the UNet's compile for `work` failed (logged by t2v.compiled): a row must
    not report eager seconds as compiled ones."""
    unet = pipe.unet
    if not isinstance(unet, FastUNet) or unet.compiler is None:
        return impl
    shape = video_shape(unet.cfg, work.batch, work.frames, work.height, work.width)
    return impl if unet.compiled(shape) else f"{impl} (its compile failed: ran eager)"


def _row(rec, work, impl: str, seconds: float, mem: dict, latents: torch.Tensor, flops: dict, **extra) -> None:
    rec.row(work=work.name, impl=impl, seconds=seconds, tflops=flops["total"] / seconds / 1e12,
            videos_per_gpu_hour=3600 * work.batch / seconds, **mem, latents=latents, **extra)


def run_all(args, config, states, device: torch.device, rec) -> None:
    """Every section `plan` selects, in order of importance; each row is saved as soon as it is measured."""
    steps = plan(args, device)
    rec.extra("plan", steps)
    sizes = measure.TINY_WORK if args.tiny else measure.WORK
    works = [sizes[name] for name in args.configs or measure.DEFAULT_CONFIGS]
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    noises = {w.name: w.noise(config.unet.in_dim) for w in works}
    pipe = measure.load_ours(config, states, device, dtype)
    flops = {w.name: measure.count_flops(pipe, w, args.steps) for w in works}  # the same network in both
    rec.extra("flops", flops)
    first = works[0]
    shapes = None if "kernels" not in steps else {
        w.name: kernel_checks.record_shapes(pipe.unet, _unet_inputs(pipe, w)) for w in works}
    del pipe
    _free(device)
    theirs = {} if "diffusers eager" not in steps else diffusers_section(
        config, states, works, args.steps, device, dtype, noises, flops, rec, "diffusers compiled" in steps,
        args.backend)
    fast, reference = {}, None
    if "ours eager" in steps or args.fast:
        fast, reference = ours_section(args, config, states, works, steps, device, dtype, noises, flops, theirs, rec)
    if shapes is not None:
        use_fastest_correct_choice(kernels_section(shapes, device, rec, args.kernels or KERNEL_CHECKS), rec)
    references = {"fp32": reference, "ours": fast.get(first.name), "diffusers": theirs.get(first.name)}
    for name in args.variants:
        try:
            variant_section(name, config, states, first, args, device, noises[first.name], flops[first.name],
                            references, rec)
        except Exception as exc:  # one variant that fails leaves the others and the report
            log.exception("the variant %s failed", name)
            rec.extra(f"skipped_variant_{name}", f"failed: {exc!r}"[:500])
            _free(device)
    if "cold start" in steps and not _late(args, 60):
        cold_section(config, states, args, rec)


def ours_section(args, config, states, works, steps: list[str], device, dtype, noises: dict, flops: dict,
                 theirs: dict, rec) -> tuple[dict, torch.Tensor | None]:
    """Our eager rows (`steps` "ours eager") on the first work size, then (--configs, unless --no-fast) the compiled
    path on each, with its memory, decode and profile sections and the fp32 check; returns the compiled runs' final
    latents by work name and the fp32 reference (None where not run)."""
    first = works[0]
    pipe = measure.load_ours(config, states, device, dtype)
    variants = (("ours eager (plain)", None), ("ours eager fused+NHWC", {"compile": False, "cuda_graphs": False}),
                ("ours fused+NHWC+CUDA graphs", {"compile": False, "cuda_graphs": True}))
    for impl, options in variants if "ours eager" in steps else ():
        if options is not None:
            pipe.optimize(**options)
        seconds, mem, lat = measure.run_ours(pipe, first, args.steps, device, noises[first.name])
        _row(rec, first, impl, seconds, mem, lat, flops[first.name], **_errors(lat, theirs.get(first.name)))
    fast, reference = {}, None
    if args.fast:
        pipe.optimize(compile=True, cuda_graphs=True, backend=args.backend)
    for i, work in enumerate(works if args.fast else ()):
        if i and _late(args, 0):
            rec.extra(f"skipped_{work.name}", "the --deadline-s had passed")
            continue
        seconds, mem, lat = measure.run_ours(pipe, work, args.steps, device, noises[work.name], args.repeats)
        fast[work.name] = lat
        _row(rec, work, _as_run(pipe, work, "ours compiled+CUDA graphs"), seconds, mem, lat, flops[work.name],
             **_errors(lat, theirs.get(work.name)))
        if "profile" in steps:  # every work size: what limits batches shows against the single video
            if i == 0:
                rec.extra("memory_by_stage", memory_section(pipe, work, device))
                rec.extra("decode", decode_section(pipe, work, device))
            rec.extra("profile" if i == 0 else f"profile_{work.name}",
                      profile_section(pipe, work, flops[work.name], device))
        if i == 0 and "fp32" in steps:
            reference = fp32_section(config, states, work, args.steps, device, noises[work.name],
                                     {"ours compiled+CUDA graphs": lat, "diffusers": theirs.get(work.name)}, rec)
    del pipe
    _free(device)
    return fast, reference


def _unet_inputs(pipe, work) -> tuple[torch.Tensor, ...]:
    """Random inputs of one guided UNet call of `work` (the shapes the bench's runs call it with)."""
    shape = video_shape(pipe.config.unet, work.batch, work.frames, work.height, work.width)
    return example_inputs(shape, next(pipe.unet.parameters()))


def kernels_section(shapes: dict, device: torch.device, rec, checks: Iterable[str] = KERNEL_CHECKS) -> dict:
    """t2v.kernels against the stock ops on one UNet call's shapes per work size (`shapes` by work name, the first
    first), the `checks` asked for (KERNEL_CHECKS): correct, then timed (GPU; the temporal attention on every work
    size's shapes, the rest on the first's); returns the temporal-attention checks and timing of the first."""
    (_, (attentions, linears, convs)), *others = shapes.items()
    rec.extra("kernel_shapes", {"temporal_attention": sorted(attentions.items()), "linear": sorted(linears.items()),
                                "conv": sorted(convs.items())})
    results: dict = {}
    if "attention" in checks:
        small = {} if device.type == "cuda" else {"frames": (1, 16, 64), "pixels": 2, "heads": 2, "dim": 16}  # CPU:
        results["correctness"] = kernel_checks.attention_correctness(device, **small)  # Triton's interpreter, small
        rec.extra("temporal_attention_correctness", results["correctness"])
    if device.type != "cuda":
        rec.extra("skipped_kernel_timing", "timed on GPUs only")
        return results
    if "attention" in checks:
        results["timing"] = kernel_checks.attention_timing(attentions, device)
        rec.extra("temporal_attention_timing", results["timing"])
        for name, (more, _, _) in others:  # where the kernel pays off depends on the problem count: batches too
            rec.extra(f"temporal_attention_timing_{name}", kernel_checks.attention_timing(more, device))
    if "fp8" in checks:
        rec.extra("fp8_linear", kernel_checks.fp8_checks(linears, device))
    if "conv" in checks:
        rec.extra("conv_timing", kernel_checks.conv_timing(convs, device))
    return results


def use_fastest_correct_choice(results: dict, rec) -> None:
    """Let the variants run the kernel with the fastest (packing, rows) that was right at every frame count in
    fp16 (the code's defaults where nothing was timed); recorded as `temporal_attention_choice`."""
    correct = {key.split()[1] for key, c in results.get("correctness", {}).items()
               if isinstance(c, dict) and key.startswith("float16") and c.get("frames_not_within_rounding") == []}
    timed = {name: ms for name, ms in results.get("timing", {}).get("ms_per_unet_call", {}).items()
             if name != "sdpa" and ms == ms and name.split("/")[0] in correct}
    if timed:
        packing, rows = min(timed, key=timed.get).split("/")
        temporal_attention.PACKING, temporal_attention.ROWS = packing, int(rows)
    rec.extra("temporal_attention_choice", f"{temporal_attention.PACKING}/{temporal_attention.ROWS}")


def variant_section(name: str, config, states, work, args, device, noise, flops: dict, references: dict,
                    rec) -> None:
    """Our pipeline with one opt-in change (VARIANTS) on `work`: time, memory, final latents against fp32, our
    fp16 compiled run and diffusers; on GPUs its kernel profile."""
    dtype, options = VARIANTS[name]
    if _late(args, 0):
        rec.extra(f"skipped_variant_{name}", "the --deadline-s had passed")
        return
    reason = fp8.unavailable(device) if dtype == "fp8" else None
    if reason is not None:
        rec.extra(f"skipped_variant_{name}", reason)
        return
    smoke = device.type == "cpu" and dtype == "float16"  # CPU smoke tests: the fp16 variants in fp32
    pipe = measure.load_ours(config, states, device, None if smoke else dtype, **FP8_OPTIONS.get(name, {}))
    if options is not None:
        pipe.optimize(compile=True, cuda_graphs=True, backend=args.backend, **options)
    seconds, mem, lat = measure.run_ours(pipe, work, args.steps, device, noise, args.repeats)
    errors = {f"latents_vs_{key}": measure.rel_err(lat, ref) for key, ref in references.items() if ref is not None}
    impl = f"ours plain, {name}" if options is None else _as_run(pipe, work, f"ours compiled+CUDA graphs, {name}")
    _row(rec, work, impl, seconds, mem, lat, flops, **errors)
    if "latents_vs_fp32" in errors:
        rec.extra("vs_fp32", {**rec.data["extra"].get("vs_fp32", {}), impl: errors["latents_vs_fp32"]})
    if device.type == "cuda" and args.profile and options is not None:
        rec.extra(f"profile_{name}", profile_section(pipe, work, flops, device))
    del pipe
    _free(device)


def _late(args, margin: float) -> bool:
    """Past the run's --deadline-s (less `margin`), counted from the start of the benchmark."""
    return args.deadline_s is not None and time.perf_counter() - args.started > args.deadline_s + margin


def _errors(ours: torch.Tensor, theirs: torch.Tensor | None) -> dict:
    return {} if theirs is None else {"latents_vs_diffusers": measure.rel_err(ours, theirs)}


def diffusers_section(config, states, works, steps, device, dtype, noises, flops, rec, compiled: bool = False,
                      backend: str = "inductor") -> dict:
    """diffusers eager on every work size, then (`compiled`) with `torch.compile(unet, fullgraph=True)` on the
    first, as perf-baseline.md's anchor; returns their eager final latents by work name."""
    pipe = twin.pipeline(config, states, device, dtype)
    latents = {}
    for work in works:
        seconds, mem, lat = measure.run_diffusers(pipe, work, steps, device, noises[work.name])
        latents[work.name] = lat
        _row(rec, work, "diffusers eager", seconds, mem, lat, flops[work.name])
    if compiled:
        pipe.unet = torch.compile(pipe.unet, fullgraph=True, backend=backend)
        work = works[0]
        seconds, mem, lat = measure.run_diffusers(pipe, work, steps, device, noises[work.name])
        _row(rec, work, "diffusers compiled", seconds, mem, lat, flops[work.name],
             latents_vs_diffusers=measure.rel_err(lat, latents[work.name]))
    del pipe
    _free(device)
    return latents


def fp32_section(config, states, work, steps, device, noise, others: dict, rec) -> torch.Tensor:
    """The plain pipeline in fp32 from the same noise: the reference every half-precision run must stay near."""
    pipe = measure.load_ours(config, states, device, "float32")
    ref = torch.cat([r.latents for r in pipe.generate_batch(work.requests(steps), latents=noise)])
    rec.extra("vs_fp32", {name: measure.rel_err(lat, ref) for name, lat in others.items() if lat is not None})
    del pipe
    _free(device)
    return ref


def cold_section(config, states, args, rec) -> None:
    """Write our fp16 export and time a fresh process from `python -m t2v` to its first denoising step."""
    with tempfile.TemporaryDirectory(prefix="t2v-export-") as temporary:  # 3.5 GB at the real size: removed after
        folder = Path(temporary)
        started = time.perf_counter()
        write_export(config, states, folder, torch.float16, "random")
        written = time.perf_counter() - started
        try:
            timed = measure.cold_start(folder, args.device, args.backend)
            rec.extra("cold_start", {"export_write_s": written, **timed})
        except subprocess.TimeoutExpired as exc:
            rec.extra("cold_start", {"export_write_s": written, "error": f"timed out: {exc}"})


def memory_section(pipe, work, device: torch.device) -> dict:
    """Peak GPU memory (GiB) of each stage of one job on the fast path: weights, denoise, decode."""
    cond, uncond, _ = pipe.encode_prompts([measure.PROMPT] * work.batch, [""] * work.batch)
    x = work.noise(pipe.config.unet.in_dim).to(device)
    torch.cuda.synchronize(device)
    out = {"resident": torch.cuda.memory_allocated(device) / 2**30}
    torch.cuda.reset_peak_memory_stats(device)
    request = work.requests(2)[0]
    model = GuidedDenoiser(pipe.unet, cond, uncond, request.guidance)
    final = pipe.denoise(x, model, request.sampler, pipe.timesteps(request))
    out["denoise_peak"] = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    pipe.decode(final)
    out["decode_peak"] = torch.cuda.max_memory_allocated(device) / 2**30
    out["vae_chunk"] = pipe.vae_chunk
    return out


def _category(name: str) -> str:
    lowered = name.lower()
    if lowered.startswith(INDUCTOR_FUSED):  # named after the ops it fuses: "…_convolution_native_group_norm_…" is
        return "fused (triton)"  # a GroupNorm pass (docs/perf-notes.md row 80), not a convolution
    for category, fragments in CATEGORIES:
        if any(f in lowered for f in fragments):
            return category
    return "other"


def decode_section(pipe, work, device: torch.device) -> dict:
    """The VAE decode of one `work` batch (`vae_chunk` frames at a time): eager, eager with channels-last weights,
    and as the fast path serves it (compiled, t2v.compiled.CompiledDecoder) with its output's error against eager
    (ms each); the pipeline is left as it was."""
    latents = work.noise(pipe.config.unet.in_dim).to(device)
    served, pipe.chunk_decoder = pipe.chunk_decoder, None  # the fast path's compiled decoder, if any
    vae = pipe.vae
    try:
        out = {"vae_chunk": pipe.vae_chunk, "eager_ms": 1e3 * _step_time(pipe.decode, (latents,), device, 5)}
        reference = pipe.decode(latents)
        channels_last(vae)
        out["eager_channels_last_ms"] = 1e3 * _step_time(pipe.decode, (latents,), device, 5)
    finally:
        for m in vae.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.data = m.weight.data.contiguous()
        pipe.chunk_decoder = served
    if served is not None:
        out["compiled_ms"] = 1e3 * _step_time(pipe.decode, (latents,), device, 5)
        out["compiled_vs_eager"] = measure.rel_err(pipe.decode(latents), reference)
    return out


def _step_time(fn, inputs, device, n: int = 20) -> float:
    for _ in range(3):
        fn(*inputs)
    measure.sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn(*inputs)
    measure.sync(device)
    return (time.perf_counter() - start) / n


def profile_section(pipe, work, flops: dict, device: torch.device) -> dict:
    """UNet step time (graphed vs compiled without graphs) and kernel time per category against its FLOP floor."""
    from torch.profiler import ProfilerActivity, profile

    cfg, dt = pipe.config.unet, pipe.dtype
    x = torch.randn(2 * work.batch, cfg.in_dim, work.frames, work.height // 8, work.width // 8, device=device,
                    dtype=dt)
    inputs = (x, torch.full((2 * work.batch,), 999, device=device), torch.randn(2 * work.batch, 77,
                                                                                  cfg.context_dim, device=device,
                                                                                  dtype=dt))
    ceiling = measure.matmul_ceiling(device, dt)
    result = {"matmul_ceiling_tflops": ceiling, "unet_step_graphed_ms": 1e3 * _step_time(pipe.unet, inputs, device),
              "unet_step_compiled_no_graph_ms": 1e3 * _step_time(pipe.unet.run, inputs, device),
              "unet_step_floor_ms": 1e3 * flops["unet_call"] / ceiling / 1e12}
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            pipe.unet.run(*inputs)
        measure.sync(device)
    kernels = [(e.key, e.self_device_time_total / 3e3, e.count // 3) for e in prof.key_averages()
               if e.device_type == torch.autograd.DeviceType.CUDA and e.self_device_time_total > 0]
    by_cat: dict[str, float] = {}
    for name, ms, _ in kernels:
        by_cat[_category(name)] = by_cat.get(_category(name), 0.0) + ms
    op_flops = {family: sum(n for op, n in flops["unet_by_op"].items() if frag in op) for family, frag in OP_FAMILIES}
    result["kernel_ms_per_step"] = sum(by_cat.values())
    result["categories"] = {c: {"ms": ms, "tflop": op_flops.get(c, 0) / 1e12,
                                "floor_ms": 1e3 * op_flops.get(c, 0) / ceiling / 1e12} for c, ms in by_cat.items()}
    ranked = sorted(kernels, key=lambda k: -k[1])
    result["top_kernels"] = [(n[:90], round(ms, 3), c) for n, ms, c in ranked[:15]]
    result["fused_kernels"] = [(n[:120], round(ms, 4), c) for n, ms, c in ranked  # every one, for comparing runs
                               if _category(n) == "fused (triton)"]
    return result
