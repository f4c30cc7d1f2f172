"""benchmarks/full_queue.py without a model: its options, and how it counts the time the renders cover."""

from pathlib import Path

import pytest

from storage import JobState, Repository, migrate
from tests.scripts import load_script


def _full_queue():
    return load_script(Path("benchmarks") / "full_queue.py")


@pytest.mark.parametrize(("flags", "says"), [
    (["--batch-max", "0"], "--batch-max 0 is outside BATCH_MAX's range, 1–16"),
    (["--batch-max", "2", "17"], "--batch-max 17 is outside BATCH_MAX's range, 1–16"),
    (["--users", "0"], "--users=0 must be at least 1"),
    (["--jobs", "0"], "--jobs=0 must be at least 1"),
    (["--compile-wait-s", "-1"], "--compile-wait-s=-1 must be 0 or more seconds"),
    (["--max-frames", "65"], "--max-frames=65 is outside the frames a video may have, 1–64"),
    (["--backend", "inducter"], "--backend inducter: not a torch.compile backend; use one of "),
    (["--dtype", "fp8"], "--dtype fp8: fp8 needs a CUDA GPU with fp8 tensor cores"),
    (["--dtype", "fp4"], "--dtype fp4: not a dtype t2v knows; use one of float32, "),
])
def test_bad_options_stop_before_any_work_and_name_the_value(flags, says, capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        _full_queue().main(["--cache", str(tmp_path), "--device", "cpu", "--tiny", *flags])
    assert stopped.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.parametrize(("spans", "covered"), [
    ([], 0.0),
    ([(0.0, 2.0), (3.0, 4.0)], 3.0),  # a gap between two units is not covered
    ([(0.0, 2.0), (1.0, 3.0)], 3.0),  # two workers' units overlapping count once
    ([(1.0, 5.0), (2.0, 3.0), (6.0, 7.0)], 5.0),  # one inside another
])
def test_the_time_covered_by_renders_counts_each_second_once(spans, covered):
    assert _full_queue()._covered(spans) == covered


async def test_a_run_starts_on_a_new_database_not_the_jobs_a_run_cut_short_left_queued(tmp_path, monkeypatch):
    # was: the jobs an earlier run left queued in --workdir's full-queue.db were restored by the service's start and
    # rendered inside the timed queue (a CPU smoke run: 54 s for 2 videos, 46 s "between renders", against 27 and 0.01)
    script = _full_queue()
    args = script.parse_args(["--cache", str(tmp_path), "--device", "cpu", "--tiny", "--workdir", str(tmp_path)])
    engines, script_create_engine = [], script.create_engine

    def create_engine(url: str):
        engines.append(script_create_engine(url))
        return engines[-1]

    class Started(Exception):
        """What the service would restore at its start: the queued and running jobs."""

    class Service:
        def __init__(self, repo: Repository, *args, **kwargs) -> None:
            self.repo = repo

        async def start(self) -> None:
            left = await self.repo.list_jobs([JobState.QUEUED, JobState.RUNNING])
            for engine in engines:
                await engine.dispose()
            raise Started([job.id for job in left])

    monkeypatch.setattr(script, "create_engine", create_engine)
    monkeypatch.setattr(script, "VideoService", Service)
    earlier = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'full-queue.db'}")  # a run cut short
    await migrate(earlier)
    await Repository(earlier).create_job(user_id=1, user_name="user1", channel_id=1, guild_id=1, prompt="A panda.",
                                         params={"steps": 50, "frames": 16, "width": 256, "height": 256})
    await earlier.dispose()

    with pytest.raises(Started) as started:
        await script.run(args)
    assert started.value.args == ([],)


def test_a_units_render_is_split_at_its_first_and_last_progress_report():
    script = _full_queue()

    def seen(started, first, last, finished):
        job = script.Seen(None, started=started, finished=finished)
        job.extra.update(first_step=first, last_step=last)
        return job

    units = [[seen(0.0, 0.5, 10.0, 11.0), seen(0.0, 0.6, 10.2, 12.0)],  # a unit of 2: 0.5 before, 9.7 steps, 1.8 after
             [seen(12.0, 12.1, 20.0, 20.5)]]
    phases = script._phases(units[::-1])
    each = phases.pop("unit_phases_s")  # each unit's own, in the order the units started
    assert each == [pytest.approx([0.5, 9.7, 1.8]), pytest.approx([0.1, 7.9, 0.5])]
    assert phases == pytest.approx({"unit_before_steps_s_median": (0.5 + 0.1) / 2,
                                    "unit_steps_s_median": (9.7 + 7.9) / 2,
                                    "unit_after_steps_s_median": (1.8 + 0.5) / 2})
    assert script._phases([[script.Seen(None, started=0.0, finished=1.0)]]) == {
        **dict.fromkeys(("unit_before_steps_s_median", "unit_steps_s_median", "unit_after_steps_s_median")),
        "unit_phases_s": []}  # no steps reported
