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
