"""The GPU probes in benchmarks/ on a machine without a GPU: bad values and a missing GPU get one line before any work;
fx_traces.py's record of torch.fx traces tells a plain trace from make_fx's; temporal_conv_forms.py's forms each
compute the convolution they stand for; capture_cost.py weighs a first call's cost against its replays'."""

import sys
from pathlib import Path

import pytest
import torch

from tests.scripts import load_script


def _refusal(monkeypatch, capsys, script: str, *argv: str) -> str:
    probe = load_script(Path("benchmarks") / script)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", [script, *argv])
    with pytest.raises(SystemExit) as exit_:
        probe.main()
    assert exit_.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_the_capture_failure_probe_refuses_without_a_gpu_in_one_line(monkeypatch, capsys):
    assert _refusal(monkeypatch, capsys, "capture_failure.py").endswith(
        "needs a CUDA GPU: the failure it checks is a CUDA graph capture's")


@pytest.mark.parametrize(("script", "argv"), [("capture_failure.py", ()), ("compile_beside.py", ()),
                                              ("capture_cost.py", ()),
                                              ("fx_traces.py", ("--device", "cpu")),
                                              ("temporal_conv_forms.py", ("--device", "cpu")),
                                              ("compiled_beside.py", ("--device", "cpu"))])
def test_each_probe_refuses_an_output_file_it_could_not_write_before_any_work(monkeypatch, capsys, tmp_path, script,
                                                                               argv):
    out = tmp_path / "missing" / "found.json"
    assert _refusal(monkeypatch, capsys, script, *argv, "--out", str(out)).endswith(
        f"--out {out}: the folder {out.parent} does not exist; create it first, or name a file elsewhere")


@pytest.mark.parametrize(("argv", "line"), [
    ((), "needs a CUDA GPU: it times rendering beside inductor's GPU compiles"),
    (("--seconds", "0"), "--seconds 0: give a positive length for each phase"),
    (("--seconds", "nan"), "--seconds nan: give a positive length for each phase"),
])
def test_the_compile_beside_probe_refuses_bad_values_and_no_gpu_in_one_line(monkeypatch, capsys, argv, line):
    assert _refusal(monkeypatch, capsys, "compile_beside.py", *argv).endswith(line)


@pytest.mark.parametrize(("argv", "line"), [
    (("--device", "gpu0"), "--device gpu0: not a device name; use cpu, cuda or cuda:N"),
    (("--device", "cuda"), "--device cuda: no CUDA GPU is available on this machine; use --device cpu"),
    (("--device", "cpu", "--backend", "inducter"), "--backend inducter: not a torch.compile backend; use one of "),
])
def test_fx_traces_refuses_bad_values_in_one_line_before_loading_anything(monkeypatch, capsys, argv, line):
    refusal = _refusal(monkeypatch, capsys, "fx_traces.py", *argv)
    assert line in refusal
    if "--backend" in argv:
        assert "eager" in refusal.split("use one of ")[1].split(", ")  # the CPU smoke test's backend is offered


@pytest.mark.parametrize(("argv", "line"), [
    ((), "--device cuda: no CUDA GPU is available on this machine; use --device cpu"),
    (("--device", "cpu", "--backend", "inducter"), "--backend inducter: not a torch.compile backend; use one of "),
    (("--device", "cpu", "--beside-max-s", "0"), "--beside-max-s=0 must be a number of seconds above 0 (default 240)"),
    (("--device", "cpu", "--beside-max-s", "nan"), "--beside-max-s=nan must be a number of seconds above 0"),
])
def test_the_compiled_beside_probe_refuses_bad_values_in_one_line_before_loading_anything(monkeypatch, capsys, argv,
                                                                                          line):
    assert line in _refusal(monkeypatch, capsys, "compiled_beside.py", *argv)


def test_fx_traces_tells_a_plain_trace_from_make_fx_s(monkeypatch):
    from torch.fx import _symbolic_trace as fx_trace
    from torch.fx.experimental.proxy_tensor import make_fx

    script = load_script(Path("benchmarks") / "fx_traces.py")
    trace = fx_trace.Tracer.trace
    earlier: list = []
    records: list = []
    monkeypatch.setattr(fx_trace.Tracer, "trace", script.recording(trace, earlier))
    torch.fx.symbolic_trace(lambda x: x - 1)
    monkeypatch.setattr(fx_trace.Tracer, "trace", script.recording(trace, records))
    torch.fx.symbolic_trace(lambda x: x + 1)
    make_fx(lambda x: x * 2)(torch.ones(2))
    assert len(earlier) == 1  # a later phase's traces are not counted in an earlier one's too
    plain, make_fx_s = sorted(script.summary(records), key=lambda group: not group["plain_call_module"])
    assert plain["tracer"] == "torch.fx._symbolic_trace.Tracer" and plain["plain_call_module"] and plain["count"] == 1
    assert make_fx_s["tracer"].endswith("PythonKeyTracer") and not make_fx_s["plain_call_module"]
    assert "test_gpu_probes.py" in plain["caller"]


@pytest.mark.parametrize(("device", "line"), [
    ("mps", "--device mps: t2v runs on cpu or cuda (cuda:N), not on mps"),
    ("cuda", "--device cuda: no CUDA GPU is available on this machine; use --device cpu"),
])
def test_the_temporal_conv_forms_refuse_a_device_they_cannot_use_in_one_line(monkeypatch, capsys, device, line):
    assert _refusal(monkeypatch, capsys, "temporal_conv_forms.py", "--device", device).endswith(line)


@pytest.mark.parametrize(("b", "f", "p", "c"), [(2, 16, 4, 8), (1, 1, 3, 4), (3, 2, 1, 5)])
def test_each_temporal_conv_form_computes_the_3x1_convolution(b, f, p, c):
    script = load_script(Path("benchmarks") / "temporal_conv_forms.py")
    g = torch.Generator().manual_seed(f)
    x = torch.randn(b, c, f, p, generator=g, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c, c, 3, 1, generator=g, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    exact = torch.nn.functional.conv2d(x, weight, bias, padding=(1, 0))
    for name, form in script.FORMS.items():
        torch.testing.assert_close(form(x, weight, bias), exact, msg=name)


def test_the_capture_cost_probe_refuses_without_a_gpu_in_one_line(monkeypatch, capsys):
    assert _refusal(monkeypatch, capsys, "capture_cost.py").endswith(
        "needs a CUDA GPU: it times CUDA graph captures and cuDNN's search")


def test_the_capture_cost_probe_weighs_each_mode_s_first_call_against_its_replays():
    script = load_script(Path("benchmarks") / "capture_cost.py")
    shape = {"frames": 16, "height": 256, "width": 256}
    runs = {"search": {"shapes": [{**shape, "first_call_s": 6.0, "replay_ms": 40.0}]},  # 6 + 49 × 0.040 = 7.96 s
            "search-all": {"shapes": [{**shape, "first_call_s": 9.0, "replay_ms": 38.0}]},  # 9 + 49 × 0.038 = 10.862
            "heuristics": {"shapes": [{**shape, "first_call_s": 1.0, "replay_ms": 50.0}]}}  # 1 + 49 × 0.050 = 3.45 s
    found = script.compare(runs)
    assert found["total_video_unet_s_50_steps"] == {"search": 7.96, "search-all": 10.862, "heuristics": 3.45}
    assert found["faster_first_videos"] == "heuristics"
    assert found["faster_replays"] == "search-all"
    assert found["shapes"][0]["replay_ms"] == {"search": 40.0, "search-all": 38.0, "heuristics": 50.0}
    runs["heuristics"]["shapes"][0]["replay_ms"] = 200.0  # 1 + 49 × 0.2 = 10.8 s
    assert script.compare(runs)["faster_first_videos"] == "search"


def test_the_capture_cost_probe_runs_beside_compile_once_per_switch_interval_and_names_each():
    script = load_script(Path("benchmarks") / "capture_cost.py")
    assert script.runs_of(["search", "beside-compile"], [100.0, 20.0]) == [
        ("search", "search", 100.0), ("beside-compile@100us", "beside-compile", 100.0),
        ("beside-compile@20us", "beside-compile", 20.0)]
    assert script.runs_of(["beside-compile"], [100.0]) == [("beside-compile", "beside-compile", 100.0)]


def test_the_capture_cost_probe_refuses_a_switch_interval_under_a_microsecond(monkeypatch, capsys):
    assert _refusal(monkeypatch, capsys, "capture_cost.py", "--switch-us", "100", "0.5").endswith(
        "--switch-us 0.5: give an interval from 1 to 100000 microseconds")


@pytest.mark.parametrize(("argv", "line"), [
    ((), "it renders in fp8 on a CUDA GPU, and torch sees none here"),
    (("--steps", "0"), "--steps 0 is outside 1–150"),
    (("--deadline-s", "nan"), "--deadline-s nan must be above 0"),
    (("--only", " g30", "g 30"), "--only 'g 30' is in no shape's label; they are: 1:1 256×256×16 g9, "),
])
def test_the_fp8_shapes_probe_refuses_bad_values_and_no_gpu_in_one_line(monkeypatch, capsys, argv, line):
    refusal = _refusal(monkeypatch, capsys, "fp8_shapes.py", *argv)
    assert refusal.endswith(line) if "--only" not in argv else line in refusal


def test_the_fp8_shapes_probe_renders_the_calibrated_shape_first_and_every_aspect_at_each_length():
    from t2v.config import ModelConfig
    from t2v.presets import ASPECTS

    shapes = load_script(Path("benchmarks") / "fp8_shapes.py").shapes(ModelConfig())
    assert shapes[0] == {"aspect": "1:1", "width": 256, "height": 256, "frames": 16, "guidance": 9.0}
    assert {(s["aspect"], s["frames"]) for s in shapes if s["guidance"] == 9.0} >= {
        (a, f) for a in ASPECTS for f in (1, 16, 64)}
    assert {s["guidance"] for s in shapes} == {1.0, 9.0, 30.0}
    assert (shapes[-1]["width"], shapes[-1]["height"]) == (1024, 576)  # the CLI's largest, last


def test_the_fp8_shapes_probe_reports_each_layers_largest_input_against_what_its_scale_holds():
    from t2v.errors import UnsupportedDevice
    from t2v.kernels import fp8

    probe = load_script(Path("benchmarks") / "fp8_shapes.py")
    net = torch.nn.Sequential(fp8.Fp8Linear.from_linear(torch.nn.Linear(16, 16), "static"))
    net[0].input_amax = torch.tensor(1.0)
    net[0].calibrate()  # holds inputs up to 8 (HEADROOM × the calibrated 1.0) before clamping
    watch = probe.Watch(net)
    for peak in (4.0, 16.0, 2.0):  # on the CPU the layer refuses to multiply, after the hook has seen its input
        with pytest.raises(UnsupportedDevice):
            net(torch.full((2, 16), peak) * torch.tensor([1.0, -1.0])[:, None])
    seen = watch.fractions()
    assert seen == {"0": pytest.approx(2.0)} and watch.fractions() == {}
    assert probe.summary(seen) == {"layers": 1, "clamped_layers": 1, "max_fraction": pytest.approx(2.0),
                                   "worst": [("0", 2.0)]}
    watch.close()
    with pytest.raises(UnsupportedDevice):
        net(torch.ones(2, 16))
    assert watch.fractions() == {}


def test_the_fp8_shapes_probe_watches_the_feed_forwards_the_geglu_kernel_runs(monkeypatch):
    """The kernel calls neither layer of a feed-forward as a module, so their own hooks saw nothing: 66 of fp8's
    static layers went unwatched, the e4m3 hidden activation the kernel writes among them."""
    from t2v import fast
    from t2v.kernels import fp8
    from t2v.unet import FeedForward

    probe = load_script(Path("benchmarks") / "fp8_shapes.py")
    ff = FeedForward(64)
    ff.net[0].proj = fp8.Fp8Linear.from_linear(ff.net[0].proj, "static")
    ff.net[2] = fp8.Fp8Linear.from_linear(ff.net[2], "static")
    for layer in (ff.net[0].proj, ff.net[2]):
        layer.input_amax = torch.tensor(1.0)
        layer.calibrate()  # holds inputs up to 8 before clamping
    fused = fast.FusedFeedForward(ff, frozenset({fast.FP8}))
    # e4m3 products need a GPU: on the CPU each layer gives 2.0 everywhere (the GEGLU's hidden is 2 · GELU(2)), and
    # the kernel's path (which writes the hidden in e4m3, then runs the second layer's product on it) zeros
    kernel_ran = []
    monkeypatch.setattr(fp8.Fp8Linear, "forward", lambda layer, x, rows=slice(None): torch.full(
        (*x.shape[:-1], layer.weight.shape[0]), 2.0))
    monkeypatch.setattr(fast.geglu, "geglu_op", lambda values, weight, *args: kernel_ran.append(True) or torch.zeros(
        (*values.shape[:-1], weight.shape[0] // 2)))
    monkeypatch.setattr(fp8.Fp8Linear, "product", lambda layer, values, *args: torch.zeros(
        (values.shape[0], layer.weight.shape[0])))
    watch = probe.Watch(torch.nn.Sequential(fused))
    fused(torch.full((3, 64), 4.0))
    hidden = 2.0 * torch.nn.functional.gelu(torch.tensor(2.0)).item()
    assert kernel_ran and watch.fractions() == {"0.net.0.proj": pytest.approx(4.0 / 8),
                                                "0.net.2": pytest.approx(hidden / 8)}
    ff.net[2].observing = True  # a calibration render: the kernel is not used, and the layers' own hooks see it
    fused(torch.full((3, 64), 4.0))
    assert watch.fractions() == {"0.net.0.proj": pytest.approx(4.0 / 8)}


def test_the_temporal_attention_sizes_probe_refuses_without_a_gpu_in_one_line(monkeypatch, capsys):
    assert _refusal(monkeypatch, capsys, "temporal_attention_sizes.py").endswith(
        "it times kernels on a CUDA GPU, and torch sees none here")


def test_the_temporal_attention_sizes_probe_finds_each_sizes_shapes_and_the_rules_choice():
    from t2v.kernels import temporal_attention as ta

    probe = load_script(Path("benchmarks") / "temporal_attention_sizes.py")
    single = probe.attention_shapes(1, 16, 256, 256)  # the real-size UNet on the meta device
    assert single == {(32, 20, 16, 64): 2, (128, 20, 16, 64): 10, (512, 10, 16, 64): 10, (2048, 5, 16, 64): 10,
                      (2048, 8, 16, 64): 2}
    assert [probe.rule_uses_kernel(s) for s in sorted(single)] == [False, False, True, True, True]
    sixteen = probe.attention_shapes(16, 16, 256, 256)
    assert max(p * h for p, h, _, _ in sixteen) == 262_144 and all(probe.rule_uses_kernel(s) for s in sixteen)
    assert not probe.rule_uses_kernel((4096, 5, ta.MAX_FRAMES + 1, 64))  # longer clips: SDPA, whatever the count
