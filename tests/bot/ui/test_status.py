"""What a member reads about a job: stages, the bar, the time left, an ETA never in the past, the result's facts."""

from datetime import timedelta
from types import SimpleNamespace

import pytest

from bot.jobs.events import Delivered
from bot.jobs.spec import JobSpec
from bot.ui.status import bar, duration, eta_words, rendering_text, result_text
from tests.bot.helpers import NOW, job_row


@pytest.mark.parametrize(("step", "total", "shown"), [(0, 50, "▱▱▱▱▱▱▱▱▱▱ 0%"), (15, 50, "▰▰▰▱▱▱▱▱▱▱ 30%"),
                                                       (49, 50, "▰▰▰▰▰▰▰▰▰▱ 98%"), (3, 3, "▰▰▰▰▰▰▰▰▰▰ 100%")])
def test_the_bar_fills_a_cell_per_tenth_and_reads_100_only_at_the_end(step, total, shown):
    assert bar(step, total) == shown


def test_a_bar_past_its_end_names_the_bad_values():
    with pytest.raises(ValueError, match="step=4, total=3"):
        bar(4, 3)


@pytest.mark.parametrize(("seconds", "shown"), [(0.2, "1 s"), (12.1, "13 s"), (59.0, "59 s"), (61, "2 min"),
                                                (3600, "1 h"), (3900, "1 h 5 min")])
def test_a_wait_reads_in_seconds_minutes_or_hours(seconds, shown):
    assert duration(seconds) == shown


def test_rendering_shows_the_time_left_at_the_measured_rate_and_the_last_step_reads_encoding():
    record = job_row(7)
    assert rendering_text(record, 10, 40, 20.0).split("\n")[0] == "Rendering ▰▰▱▱▱▱▱▱▱▱ 25% · about 1 min left · job #7"
    assert rendering_text(record, 1, 40, None).split("\n")[0] == "Rendering ▱▱▱▱▱▱▱▱▱▱ 2% · job #7"
    assert rendering_text(record, 40, 40, 80.0).split("\n")[0] == "Encoding the video · job #7"


def test_an_eta_close_or_past_reads_any_moment_now_and_a_later_one_counts_down():
    assert eta_words(NOW - timedelta(minutes=2), NOW) == "any moment now"
    assert eta_words(NOW + timedelta(seconds=10), NOW) == "any moment now"
    assert eta_words(NOW + timedelta(seconds=11), NOW) == f"<t:{int(NOW.timestamp()) + 11}:R>"


@pytest.mark.parametrize(("spec", "origin"), [
    (JobSpec.video("a cat", seed=1, steps=1, frames=1).again(12), "🔁 Reroll of job #12"),
    (JobSpec.video("a cat", seed=1, steps=1, frames=1).again(12, "a dog"), "✏️ Edited prompt of job #12"),
    (JobSpec.video("a cat", seed=1, steps=1, frames=1), None),
])
def test_the_result_says_what_each_number_is_and_what_the_video_came_from(spec, origin):
    record = job_row(13, params=spec.params())
    lines = result_text(Delivered(record, b"", 99, (), 1.44)).split("\n")
    assert lines[2] == "0.1 s clip · 1 frame at 8 fps · 1:1 (256×256) · rendered in 1.4 s"
    assert lines[3] == "seed `99` · 1 step · guidance 9"
    assert (lines[4] if len(lines) > 4 else None) == origin


@pytest.mark.parametrize(("status", "said", "quoted"), [
    (503, {"message": "Service Unavailable", "code": 0}, "Service Unavailable"),
    (502, "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>", "HTTP 502"),  # a proxy
    (500, "", "HTTP 500"),
    (504, "x" * 500, "HTTP 504"),
])
def test_an_apology_quotes_discords_words_only_where_they_are_a_sentence(status, said, quoted):
    import discord

    from bot.ui.discord_errors import discord_said

    assert discord_said(discord.HTTPException(SimpleNamespace(status=status, reason="?"), said)) == quoted
