"""The benchmark's Markdown report: one table of every run, ratios against diffusers, the profile breakdown."""

from __future__ import annotations


def _f(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and (value != value):  # NaN
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _e(value) -> str:
    return "–" if value is None else f"{value:.1e}"


def main_table(data: dict) -> list[str]:
    """One row per run; `vs diffusers` is diffusers' (eager, and compiled where timed) seconds over ours on the
    same work size."""
    rows = data["rows"]
    eager = {r["work"]: r["seconds"] for r in rows if r["impl"] == "diffusers eager"}
    compiled = {r["work"]: r["seconds"] for r in rows if r["impl"] == "diffusers compiled"}
    lines = ["| work | implementation | seconds | speed-up vs diffusers | vs diffusers compiled | peak alloc. GiB | "
             "reserved GiB | TFLOP/s | videos / GPU-hour | first-run (warm-up) s | latents vs diffusers |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = eager.get(r["work"], float("nan")) / r["seconds"]
        versus = f"×{_f(compiled[r['work']] / r['seconds'])}" if r["work"] in compiled else "–"
        lines.append(f"| {r['work']} | {r['impl']} | {_f(r['seconds'])} | ×{_f(ratio)} | {versus} | "
                     f"{_f(r.get('peak_gib'))} | "
                     f"{_f(r.get('reserved_gib'))} | {_f(r.get('tflops'), 0)} | {_f(r['videos_per_gpu_hour'], 0)} | "
                     f"{_f(r.get('warmup_s'), 1)} | {_e(r.get('latents_vs_diffusers'))} |")
    return lines


def profile_table(profile: dict) -> list[str]:
    """Kernel time per UNet call by category against the FLOP floor at the measured matmul rate."""
    lines = [f"Measured dense fp16 matrix-product ceiling: {profile['matmul_ceiling_tflops']:.0f} TFLOP/s. "
             f"One guided UNet call: {profile['unet_step_graphed_ms']:.1f} ms as a CUDA graph, "
             f"{profile['unet_step_compiled_no_graph_ms']:.1f} ms compiled without the graph, "
             f"{profile['kernel_ms_per_step']:.1f} ms of kernel time; FLOP floor "
             f"{profile['unet_step_floor_ms']:.1f} ms.", "",
             "| kernels | ms per UNet call | share | counted TFLOP | floor ms at the ceiling | achieved TFLOP/s |",
             "|---|---|---|---|---|---|"]
    total = profile["kernel_ms_per_step"]
    for cat, v in sorted(profile["categories"].items(), key=lambda kv: -kv[1]["ms"]):
        rate = v["tflop"] / v["ms"] * 1e3 if v["tflop"] else None
        lines.append(f"| {cat} | {v['ms']:.2f} | {100 * v['ms'] / total:.0f}% | {_f(v['tflop'] or None)} | "
                     f"{_f(v['floor_ms'] or None)} | {_f(rate, 0)} |")
    lines += ["", "| top kernels | ms per call | launches per call |", "|---|---|---|"]
    lines += [f"| `{name}` | {ms} | {count} |" for name, ms, count in profile["top_kernels"]]
    return lines


def kernel_tables(extra: dict) -> list[str]:
    """t2v.kernels against the stock ops: correctness per dtype and packing, time per UNet call, fp8 errors."""
    lines = []
    checks = extra.get("temporal_attention_correctness", {})
    if "skipped" in checks:
        lines += [f"Temporal-attention kernel not checked: {checks['skipped']}."]
    elif checks:
        lines += ["| temporal attention kernel | worst max error vs fp32 SDPA | SDPA's own | frame counts not within "
                  "rounding |", "|---|---|---|---|"]
        for key, c in checks.items():
            if "error" in c:
                lines.append(f"| {key} | failed: `{c['error'][:200]}` | – | – |")
            else:
                failing = ", ".join(map(str, c["frames_not_within_rounding"])) or "none"
                lines.append(f"| {key} | {_e(c['worst_error'])} | {_e(c['worst_sdpa_error'])} | {failing} |")
    timing = extra.get("temporal_attention_timing")
    if timing:
        sdpa = timing["ms_per_unet_call"]["sdpa"]
        lines += ["", f"Temporal attention per UNet call (best: {timing['best']}):", "",
                  "| implementation | ms per UNet call | vs SDPA |", "|---|---|---|"]
        lines += [f"| {name} | {ms:.3f} | ×{_f(sdpa / ms)} |" for name, ms in timing["ms_per_unet_call"].items()]
    linear = extra.get("fp8_linear", {})
    if "skipped" in linear:
        lines += ["", f"fp8 Linear layers not checked: {linear['skipped']}."]
    elif linear:
        ms, err = linear["ms_per_unet_call"], linear["worst_relative_error"]
        lines += ["", "Transformer Linear layers per UNet call (errors: worst relative Frobenius error against the "
                      "fp32 product over the shapes):", "",
                  "| precision | ms (with eager activation quantisation) | ms (GEMM only) | worst error | "
                  "vs its fp32 reference arithmetic |", "|---|---|---|---|---|",
                  f"| fp16 | {_f(ms.get('fp16_ms'), 3)} | – | {_e(err.get('fp16_error'))} | – |"]
        lines += [f"| fp8 {sc} scales | {_f(ms.get(f'fp8_{sc}_ms'), 3)} | {_f(ms.get(f'fp8_{sc}_gemm_ms'), 3)} | "
                  f"{_e(err.get(f'fp8_{sc}_error'))} | {_e(err.get(f'fp8_{sc}_vs_reference'))} |"
                  for sc in ("row", "tensor", "static")]
    conv = extra.get("conv_timing")
    if conv:
        ms = conv["ms_per_unet_call"]
        lines += ["", "Convolutions per UNet call, timed alone (ms; channels-last fp16):", "",
                  "| kind | cuDNN | a GEMM of the same M×K×N |", "|---|---|---|"]
        lines += [f"| {kind} | {_f(ms.get(f'{kind} cudnn_ms'), 3)} | {_f(ms.get(f'{kind} equal_gemm_ms'), 3)} |"
                  for kind in ("spatial", "temporal", "1x1")
                  if f"{kind} cudnn_ms" in ms]
        if "spatial fp8_kernel_ms" in ms:
            err = conv.get("worst_relative_error", {})
            lines += ["", f"The 3×3 convolutions fp8.Fp8Conv3x3 takes (t2v.kernels.conv3x3): cuDNN fp16 "
                          f"{_f(ms['spatial fp8_kernel_cudnn_ms'], 3)} ms a call, the fp8 kernel "
                          f"{_f(ms['spatial fp8_kernel_ms'], 3)} ms; worst error against the fp32 convolution "
                          f"{_e(err.get('fp8_kernel_error'))}, against its own operands' exact sums "
                          f"{_e(err.get('fp8_kernel_vs_reference'))}."]
            if "spatial fp8_promoted_ms" in ms:
                lines += [f"With each K step's partial sum promoted to fp32: "
                          f"{_f(ms['spatial fp8_promoted_ms'], 3)} ms, "
                          f"against its own operands' exact sums {_e(err.get('fp8_promoted_vs_reference'))}."]
    return lines


def markdown(data: dict) -> str:
    """The whole report."""
    info, extra = data["info"], data["extra"]
    lines = [f"Device: {info['device']}, torch {info['torch']}, {info['date']}; {info['steps']} DDIM steps, "
             f"guidance 9, config {info['config']}.", ""]
    lines += main_table(data)
    if "vs_fp32" in extra:
        errs = ", ".join(f"{k} {v:.1e}" for k, v in extra["vs_fp32"].items())
        lines += ["", f"Final latents of the standard video against our fp32 plain pipeline (max error / max |x|): "
                      f"{errs}."]
    if "memory_by_stage" in extra:
        m = extra["memory_by_stage"]
        lines += ["", f"Memory by stage, standard video on the fast path (GiB allocated): weights and buffers "
                      f"{m['resident']:.2f}, denoising peak {m['denoise_peak']:.2f}, decoding peak "
                      f"{m['decode_peak']:.2f} (VAE {m['vae_chunk']} frames at a time)."]
    if "profile" in extra:
        lines += ["", *profile_table(extra["profile"])]
    for key in (k for k in extra if k.startswith("profile_")):
        lines += ["", f"Profile of {key.removeprefix('profile_')}:", "", *profile_table(extra[key])]
    if "decode" in extra:
        d = extra["decode"]
        lines += ["", f"VAE decode of the first work size ({d['vae_chunk']} frames at a time): eager "
                      f"{_f(d['eager_ms'], 1)} ms, eager with channels-last weights "
                      f"{_f(d.get('eager_channels_last_ms'), 1)} ms, compiled (as served) "
                      f"{_f(d.get('compiled_ms'), 1)} ms (output vs eager {_e(d.get('compiled_vs_eager'))})."]
    stages = [f"{r['work']} {r['impl']}: " + ", ".join(f"{k.removesuffix('_s')} {v:.3f}"
                                                       for k, v in r["stages"].items())
              for r in data["rows"] if r.get("stages")]
    if stages:
        lines += ["", "Stage seconds of our runs (the last timed run): " + "; ".join(stages) + "."]
    kernels = kernel_tables(extra)
    if kernels:
        lines += ["", *kernels]
    skipped = [f"{key.removeprefix('skipped_')}: {why}" for key, why in extra.items() if key.startswith("skipped_")]
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped) + "."]
    if "cold_start" in extra:
        c = extra["cold_start"]
        lines += ["", "Cold start (fresh process, fp16 safetensors export in the page cache): " + ", ".join(
            f"{k} {_f(v, 1) if isinstance(v, float) else v}" for k, v in c.items()) + "."]
    flops = extra.get("flops", {})
    if flops:
        lines += ["", "Counted FLOPs (FlopCounterMode): " + "; ".join(
            f"{name}: UNet call {v['unet_call'] / 1e12:.2f} TFLOP, decode {v['decode'] / 1e12:.2f}, text "
            f"{v['text'] / 1e12:.3f}, total {v['total'] / 1e12:.0f}" for name, v in flops.items()) + "."]
    return "\n".join(lines) + "\n"
