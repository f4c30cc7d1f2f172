"""benchmarks/served.py's record of the mix, without a model: what a run cut short by its time limit keeps."""

import json
from pathlib import Path

import pytest

from tests.scripts import load_script


def _served():
    return load_script(Path("benchmarks") / "served.py")


def test_the_mix_is_written_as_each_job_ends_so_a_run_cut_short_keeps_it(tmp_path):
    served = _served()
    ticks = iter([12.0, 15.0])
    raw = tmp_path / "out" / "cold.mix.json"
    recorder = served.Recorder(lambda: next(ticks), raw)
    recorder.started, recorder.loaded = 0.0, 10.0
    for job_id, seed in ((1, 7), (2, 8)):
        ask = served.Ask(user=job_id, prompt=served.PROMPTS[0], aspect="1:1", frames=16, steps=25, sampler="ddim",
                         seed=seed)
        recorder.jobs[job_id] = served.Seen(ask, job_id=job_id, submitted=10.0, started=10.5)

    recorder._end(1, "done")  # the run is cut here: job 2 still renders
    cut = json.loads(raw.read_text())
    assert cut["mix_finished"] is False and cut["loaded_after_s"] == 10.0 and cut["first_done_after_load_s"] == 2.0
    assert [(job["job_id"], job["outcome"], job["finished"]) for job in cut["jobs"]] == [(1, "done", 12.0),
                                                                                          (2, None, None)]
    assert cut["mix_wall_s"] == 2.0 and "compiled" in cut["compiles"]

    recorder._end(2, "failed")
    whole = json.loads(raw.read_text())
    assert whole["mix_finished"] is True and whole["mix_wall_s"] == 5.0
    assert [job["outcome"] for job in whole["jobs"]] == ["done", "failed"]


def test_without_an_out_file_nothing_is_written(tmp_path):
    served = _served()
    recorder = served.Recorder(lambda: 1.0)
    ask = served.Ask(user=1, prompt=served.PROMPTS[0], aspect="1:1", frames=16, steps=25, sampler="ddim", seed=1)
    recorder.jobs[1] = served.Seen(ask, job_id=1)
    recorder._end(1, "done")
    assert recorder.all_done.is_set() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(("flags", "says"), [
    (["--jobs", "0"], "--jobs=0 must be at least 1"),
    (["--max-frames", "0"], "--max-frames=0 is outside the frames a video may have, 1–64"),
    (["--max-frames", "65"], "--max-frames=65 is outside the frames a video may have, 1–64"),
    (["--steady-wait-s", "nan"], "--steady-wait-s=nan must be 0 or more seconds"),
    (["--backend", "inducter"], "--backend inducter: not a torch.compile backend; use one of "),
])
def test_bad_options_stop_before_any_work_and_name_the_value(flags, says, capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        _served().main(["--run", "cold", "--cache", str(tmp_path), "--device", "cpu", "--tiny", *flags])
    assert stopped.value.code == 2 and says in capsys.readouterr().err
