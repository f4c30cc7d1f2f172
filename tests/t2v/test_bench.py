"""`python -m t2v bench` end to end on a tiny network on the CPU: every row, the ratio and the latents check."""

import json
from collections import Counter

import pytest
import torch

from t2v.cli import main


def test_bench_times_both_pipelines_and_finds_the_same_latents(tmp_path):
    code = main(["bench", "--tiny", "--device", "cpu", "--configs", "standard", "batch4", "--steps", "2",
                 "--backend", "aot_eager", "--no-cold-start", "--diffusers-compile", "on", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    rows = {(r["work"], r["impl"]): r for r in data["rows"]}
    assert ("standard", "diffusers eager") in rows and ("batch4", "diffusers eager") in rows
    assert rows["standard", "diffusers compiled"]["latents_vs_diffusers"] < 1e-4  # compiled on the first size only
    assert ("batch4", "diffusers compiled") not in rows
    assert ("batch4", "ours compiled+CUDA graphs") in rows and ("standard", "ours eager (plain)") in rows
    ours = [r for r in data["rows"] if r["impl"].startswith("ours")]
    assert all(r["latents_vs_diffusers"] < 1e-4 for r in ours)
    assert all(v < 1e-4 for v in data["extra"]["vs_fp32"].values())
    assert data["extra"]["flops"]["batch4"]["unet_call"] > 3 * data["extra"]["flops"]["standard"]["unet_call"]
    report = (tmp_path / "bench.md").read_text()
    assert "speed-up vs diffusers" in report and "vs diffusers compiled" in report
    assert "| batch4 | ours compiled+CUDA graphs |" in report


def test_a_row_whose_compile_failed_says_it_ran_eager(tmp_path, monkeypatch):
    from t2v.compiled import JitCompiler

    monkeypatch.setenv("TORCHINDUCTOR_PERSISTENT_REDUCTIONS", "0")  # what differs between two runs is on record
    monkeypatch.setenv("HOME_OF_SOMETHING_ELSE", "not a setting")

    def fail(self, unet, shape):
        raise RuntimeError("no kernel for this shape")

    monkeypatch.setattr(JitCompiler, "build", fail)
    assert main(["bench", "--tiny", "--device", "cpu", "--configs", "standard", "--steps", "1", "--no-diffusers",
                 "--no-eager", "--no-cold-start", "--no-fp32-check", "--backend", "aot_eager",
                 "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert [r["impl"] for r in data["rows"]] == ["ours compiled+CUDA graphs (its compile failed: ran eager)"]
    environment = data["info"]["environment"]
    assert environment["TORCHINDUCTOR_PERSISTENT_REDUCTIONS"] == "0" and "HOME_OF_SOMETHING_ELSE" not in environment


def test_a_variant_runs_alone_with_no_fast_and_our_pipeline_is_loaded_only_for_it(tmp_path, monkeypatch):
    from t2v.bench import measure

    loads = []
    load_ours = measure.load_ours
    monkeypatch.setattr(measure, "load_ours", lambda *args: loads.append(args[3]) or load_ours(*args))
    assert main(["bench", "--tiny", "--device", "cpu", "--configs", "standard", "--steps", "1", "--no-diffusers",
                 "--no-eager", "--no-fast", "--no-cold-start", "--variants", "bf16", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert [r["impl"] for r in data["rows"]] == ["ours plain, bf16"]
    assert loads == [torch.float32, "bfloat16"]  # once to count the FLOPs, once for the variant
    assert "vs_fp32" not in data["extra"]  # the fp32 check follows the compiled runs, which did not run


def _bench_args(*argv: str):
    from t2v.cli import build_parser

    return build_parser().parse_args(["bench", *argv])


def test_the_kernel_checks_and_variants_run_only_when_asked_for():
    from t2v.bench.sections import plan

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert plan(_bench_args(), gpu) == ["flops", "diffusers eager", "diffusers compiled", "ours eager",
                                        "ours compiled standard", "ours compiled batch4", "ours compiled zeroscope",
                                        "memory", "profile", "fp32", "cold start"]
    assert _bench_args("--kernels").kernels == [] and _bench_args("--kernels", "conv").kernels == ["conv"]
    asked = _bench_args("--configs", "standard", "--no-cold-start", "--kernels", "--variants", "fp8",
                        "triton-attention")
    assert plan(asked, cpu) == ["flops", "diffusers eager", "ours eager", "ours compiled standard", "fp32", "kernels",
                                "variant fp8", "variant triton-attention"]
    assert "profile" in plan(asked, gpu) and plan(_bench_args("--no-diffusers", "--no-fp32-check"), cpu)[:2] == [
        "flops", "ours eager"]
    assert plan(_bench_args("--no-diffusers", "--no-eager", "--no-fast", "--variants", "autotune"), gpu) == [
        "flops", "variant autotune", "cold start"]  # a variant alone: no compiled runs, nor what follows them


def test_an_unknown_variant_and_fp8_on_the_cpu_are_refused_in_one_line_each(capsys):
    assert main(["bench", "--tiny", "--device", "cpu", "--variants", "fp8-row", "fp4"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --variants fp8-row: fp8 needs a CUDA GPU with fp8 tensor cores (compute capability 8.9 or later: "
        "Ada, Hopper, Blackwell); cpu is not one",
        "error: --variants fp4: not a variant; use any of triton-attention, sdpa-attention, triton-ff, fp8-plain-ff, "
        "autotune, fp8, fp8-row, fp8-tensor, fp8-all, fp8-conv, library-groupnorm, bf16"]


def test_asking_for_only_the_cold_start_and_for_none_of_it_is_refused(capsys):
    assert main(["bench", "--tiny", "--device", "cpu", "--cold-start-only", "--no-cold-start"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --cold-start-only and --no-cold-start: the one measurement asked for is the one left out; give one "
        "of them"]


def test_an_autotuning_variant_is_refused_in_one_line_without_inductor(capsys):
    assert main(["bench", "--tiny", "--device", "cpu", "--backend", "aot_eager", "--variants", "autotune"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --variants autotune: sets inductor's autotuning, so it needs --backend inductor (got aot_eager)"]


def test_the_recorded_shapes_are_those_of_one_unet_call():
    from t2v.bench.kernel_checks import record_shapes
    from t2v.config import tiny_config
    from t2v.networks import build_modules
    from t2v.unet import SpatialTransformer, TemporalTransformer

    unet = build_modules(tiny_config(), device="cpu")["unet"].eval()
    x, t, context = torch.randn(2, 4, 3, 4, 4), torch.tensor([9, 9]), torch.randn(2, 77, 64)
    attentions, linears, convs = record_shapes(unet, (x, t, context))
    temporal = [m for m in unet.modules() if isinstance(m, TemporalTransformer)]
    assert sum(attentions.values()) == 2 * len(temporal)
    assert (2 * 4 * 4, 2, 3, 16) in attentions  # 2 rows × 4×4 pixels, 2 heads of 16, 3 frames (the first block)
    assert sum(linears.values()) == sum(isinstance(m, torch.nn.Linear) for b in unet.modules()
                                        if isinstance(b, SpatialTransformer | TemporalTransformer) for m in b.modules())
    assert sum(convs.values()) == sum(isinstance(m, torch.nn.Conv2d | torch.nn.Conv3d) for m in unet.modules())
    # the temporal 3×1×1 Conv3d as the fast path runs it: a 3×1 Conv2d on [b, c, f, h·w]
    assert ("temporal", 2, 32, 3, 16, 32, 3, 1, 1, 1, 0) in convs
    assert ("spatial", 6, 4, 4, 4, 32, 3, 3, 1, 1, 1) in convs  # the input convolution, frame by frame
    assert not unet._forward_hooks and all(not m._forward_hooks for m in unet.modules())


def test_the_kernel_checks_pass_on_the_cpu_and_say_why_they_skip_what_needs_a_gpu(monkeypatch):
    from t2v.bench import kernel_checks
    from t2v.kernels import temporal_attention as ta

    cpu = torch.device("cpu")
    if ta.INTERPRETED:
        checks = kernel_checks.attention_correctness(cpu, frames=(1, 17), pixels=2, heads=2, dim=16)
        assert set(checks) == {"float16 batched", "float16 diagonal", "bfloat16 batched", "bfloat16 diagonal"}
        assert all(c["frames_not_within_rounding"] == [] for c in checks.values())
    monkeypatch.setattr(ta, "INTERPRETED", False)
    assert "CUDA GPUs" in kernel_checks.attention_correctness(cpu)["skipped"]
    assert "fp8 needs a CUDA GPU" in kernel_checks.fp8_checks(Counter({(8, 32, 32): 1}), cpu)["skipped"]
    convs = kernel_checks.conv_timing(Counter({("temporal", 1, 8, 4, 6, 8, 3, 1, 1, 1, 0): 2,
                                               ("spatial", 4, 8, 4, 4, 16, 3, 3, 1, 1, 1): 1}), cpu)
    temporal = next(row for row in convs["per_shape"] if row["shape"][0] == "temporal")
    assert temporal["calls"] == 2 and temporal["cudnn_tflops"] > 0
    assert set(convs["ms_per_unet_call"]) == {"temporal cudnn_ms", "temporal equal_gemm_ms", "spatial cudnn_ms",
                                              "spatial equal_gemm_ms"}


def test_the_convolution_checks_time_the_fp8_kernel_on_the_shapes_it_takes_and_say_how_far_it_is():
    from t2v.bench import kernel_checks
    from t2v.kernels import conv3x3

    if not conv3x3.INTERPRETED:
        pytest.skip("needs TRITON_INTERPRET=1 when Triton is first imported")
    shapes = Counter({("spatial", 2, 64, 4, 4, 32, 3, 3, 1, 1, 1): 3, ("spatial", 2, 64, 4, 4, 32, 3, 3, 2, 1, 1): 1})
    convs = kernel_checks.conv_timing(shapes, torch.device("cpu"))
    taken, strided = sorted(convs["per_shape"], key=lambda row: row["shape"][8])
    assert taken["fp8_kernel_ms"] > 0 and "fp8_kernel_ms" not in strided  # stride 2: cuDNN's only
    ms, worst = convs["ms_per_unet_call"], convs["worst_relative_error"]
    assert ms["spatial fp8_kernel_cudnn_ms"] == pytest.approx(3 * taken["cudnn_ms"])
    assert 0 < worst["fp8_kernel_error"] < 0.06 and worst["fp8_kernel_vs_reference"] < 2e-3
    assert taken["fp8_promoted_ms"] > 0 and worst["fp8_promoted_vs_reference"] < 2e-3
    assert ms["spatial fp8_promoted_ms"] == pytest.approx(3 * taken["fp8_promoted_ms"])


def test_the_report_shows_the_kernel_checks_and_the_variants_beside_the_other_rows():
    from t2v.bench import report

    row = {"work": "standard", "seconds": 1.0, "videos_per_gpu_hour": 3600.0}
    data = {"info": {"device": "H200", "torch": "2", "date": "d", "steps": 50, "config": "c"},
            "rows": [{**row, "impl": "diffusers compiled", "seconds": 2.0},
                     {**row, "impl": "ours compiled+CUDA graphs, fp8", "latents_vs_fp32": 0.05}],
            "extra": {"vs_fp32": {"ours compiled+CUDA graphs": 1.7e-3, "ours compiled+CUDA graphs, fp8": 0.05},
                      "temporal_attention_correctness": {
                          "float16 batched": {"worst_error": 1e-3, "worst_sdpa_error": 9e-4,
                                              "frames_not_within_rounding": []},
                          "bfloat16 diagonal": {"error": "CompilationError('3-D dot')"}},
                      "temporal_attention_timing": {"ms_per_unet_call": {"sdpa": 3.6, "batched/128": 0.9},
                                                    "best": "batched/128", "per_shape": []},
                      "fp8_linear": {"ms_per_unet_call": {"fp16_ms": 9.0, "fp8_row_ms": 7.0, "fp8_row_gemm_ms": 5.0},
                                     "worst_relative_error": {"fp16_error": 3e-4, "fp8_row_error": 4e-2}},
                      "conv_timing": {"ms_per_unet_call": {"temporal cudnn_ms": 5.0, "temporal equal_gemm_ms": 3.0,
                                                           "spatial cudnn_ms": 7.0, "spatial equal_gemm_ms": 6.0,
                                                           "spatial fp8_kernel_ms": 4.5,
                                                           "spatial fp8_kernel_cudnn_ms": 5.6,
                                                           "spatial fp8_promoted_ms": 4.8},
                                      "worst_relative_error": {"fp8_kernel_error": 3e-2,
                                                               "fp8_kernel_vs_reference": 9e-3,
                                                               "fp8_promoted_vs_reference": 4e-4}}}}
    text = report.markdown(data)
    assert "| standard | ours compiled+CUDA graphs, fp8 | 1.00 | ×– | ×2.00 |" in text
    assert "ours compiled+CUDA graphs 1.7e-03, ours compiled+CUDA graphs, fp8 5.0e-02" in text
    assert "| float16 batched | 1.0e-03 | 9.0e-04 | none |" in text and "failed: `CompilationError" in text
    assert "| batched/128 | 0.900 | ×4.00 |" in text
    assert "| fp8 row scales | 7.000 | 5.000 | 4.0e-02 |" in text
    assert "| temporal | 5.000 | 3.000 |" in text and "| spatial | 7.000 | 6.000 |" in text
    assert ("cuDNN fp16 5.600 ms a call, the fp8 kernel 4.500 ms; worst error against the fp32 convolution 3.0e-02, "
            "against its own operands' exact sums 9.0e-03.") in text
    assert ("promoted to fp32: 4.800 ms, against its own operands' exact sums 4.0e-04.") in text


def test_the_variants_use_the_fastest_kernel_choice_that_was_right_at_every_frame_count(monkeypatch):
    from t2v.bench.measure import Recorder
    from t2v.bench.sections import use_fastest_correct_choice
    from t2v.kernels import temporal_attention as ta

    monkeypatch.setattr(ta, "PACKING", ta.PACKING)
    monkeypatch.setattr(ta, "ROWS", ta.ROWS)
    rec = Recorder(None, {})
    correctness = {"float16 batched": {"frames_not_within_rounding": [33]},
                   "float16 diagonal": {"frames_not_within_rounding": []}, "bfloat16 diagonal": {"error": "x"}}
    timing = {"ms_per_unet_call": {"sdpa": 3.6, "batched/128": 0.5, "diagonal/64": 0.9, "diagonal/32": float("nan")}}
    use_fastest_correct_choice({"correctness": correctness, "timing": timing}, rec)
    assert (ta.PACKING, ta.ROWS) == ("diagonal", 64) and rec.data["extra"]["temporal_attention_choice"] == "diagonal/64"
    use_fastest_correct_choice({"correctness": {"skipped": "no GPU"}}, rec)  # nothing timed: the defaults stay
    assert rec.data["extra"]["temporal_attention_choice"] == "diagonal/64"


def test_every_work_size_the_cli_offers_exists_at_both_sizes():
    from t2v.bench.measure import TINY_WORK, WORK

    assert list(WORK) == list(TINY_WORK)
    assert [WORK[name].batch for name in ("batch2", "batch4", "batch8", "batch16")] == [2, 4, 8, 16]


def test_the_cold_start_child_warms_up_the_exports_own_shape_with_the_parents_backend(tmp_path, monkeypatch, capsys):
    """The child compiled 16×256² with inductor whatever it had loaded: a tiny export on the CPU took 415 s, past the
    400 s its parent waits, so `bench --tiny --device cpu` reported its cold start as timed out."""
    from t2v.bench import measure, twin
    from t2v.compiled import FastUNet
    from t2v.networks import random_state_dicts
    from t2v.pipeline import VideoPipeline
    from t2v.weights.export import write_export

    write_export(twin.TINY, random_state_dicts(twin.TINY, seed=0, device="cpu"), tmp_path, torch.float32, "random")
    warmed, built = [], []
    real_optimize = VideoPipeline.optimize

    def warmup(self, batch, frames, height, width):  # the compile itself is the fast path's tests' (test_compiled)
        warmed.append((batch, frames, height, width))
        return 0.5

    def optimize(self, **options):
        built.append(options.get("backend"))
        return real_optimize(self, **options)

    monkeypatch.setattr(FastUNet, "warmup", warmup)
    monkeypatch.setattr(VideoPipeline, "optimize", optimize)
    measure.cold_child(str(tmp_path), "cpu", "eager")
    timings = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert warmed == [(1, twin.TINY.frames, twin.TINY.height, twin.TINY.width)] and built == ["eager"]
    assert timings["compile_warmup_cached_s"] == 0.5 and timings["first_step_at"] > 0


@pytest.mark.parametrize(("kernel", "category"), [
    ("triton_per_fused__unsafe_view_clone_convolution_native_group_norm_permute_view_1", "fused (triton)"),
    ("triton_red_fused_add_convolution_native_group_norm_12", "fused (triton)"),
    ("triton_poi_fused_gelu_mul_split_view_27", "fused (triton)"),
    ("triton_tem_fused_convolution_3", "convolution"),
    ("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize64x64x64", "convolution"),
    ("nvjet_sm90_hsh_128x256_64x4_2x1_v_bz_coopA_bias_TNN", "matmul"),
    ("temporal_attention_diagonal", "attention")])
def test_the_profile_counts_inductors_fused_kernels_as_fused_whatever_ops_name_them(kernel, category):
    # a GroupNorm pass inductor names after the convolution whose output it reads was counted as a convolution
    from t2v.bench.sections import _category

    assert _category(kernel) == category
