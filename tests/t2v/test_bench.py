"""`python -m t2v bench` end to end on a tiny network on the CPU: every row, the ratio and the latents check."""

import json

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
