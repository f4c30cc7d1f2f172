"""benchmarks/style_mix.py on the CPU with the tiny model: the bot's scheduler gives each style its own units, the
worker switches styles only between them (a smoke test, no speed asserted)."""

import json
from pathlib import Path

from tests.scripts import load_script


def _style_mix():
    return load_script(Path("benchmarks") / "style_mix.py")


def test_the_mix_renders_one_unit_per_style_and_switches_only_between_units(tmp_path):
    out = tmp_path / "style-mix.json"
    _style_mix().main(["--size", "tiny", "--jobs", "6", "--users", "3", "--steps", "1", "--rank", "2",
                       "--unwindowed", "--out", str(out)])

    report = json.loads(out.read_text())
    [one], [mix], [unwindowed] = (report["runs"][name] for name in ("one_style", "mix", "mix_unwindowed"))
    assert (one["units"], one["switches"]) == ([4, 2], 1)
    assert (mix["units"], mix["unit_styles"], mix["switches"]) == ([2, 2, 2], ["claymation", "watercolor", "anime"], 3)
    assert (unwindowed["units"], unwindowed["switches"]) == ([1] * 6, 6)
    assert set(report["overhead_pct"]) == {"mix", "mix_unwindowed"} and report["median_total_s"]["mix"] > 0
