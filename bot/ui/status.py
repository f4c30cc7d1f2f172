"""What a member reads about a job, in their words: its stage (queued → rendering → encoding → uploading), a bar and
a percentage, the time left, an ETA that is never in the past, and under the result what each number is.

    Queued #3 · ETA <t:1767000000:R> · job #7           (or "ETA any moment now" once the estimate is close or gone)
    Rendering ▰▰▰▱▱▱▱▱▱▱ 30% · about 12 s left · job #7
    Encoding the video · job #7
    Uploading the video · job #7
    Finished · job #7 · https://discord.com/channels/…   (the video is a new message, which notifies its requester)
    Cancelled · job #7 · https://discord.com/channels/…  (past the token, a cancel or a failure is a new message too)
    Deleted · job #7 · its video was deleted             (after 🗑 Delete: the link would lead nowhere)

Pure functions of a job row and plain values: delivery (bot.ui.delivery) decides when to show them.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from bot.characters import counted, shown
from bot.jobs.events import Delivered
from bot.jobs.spec import UPSCALE
from bot.moderation.text import discord_time
from storage import JobRecord, JobState
from t2v.sizes import frame_text

BAR_CELLS = 10
ENDINGS = {JobState.CANCELLED: "Cancelled", JobState.FAILED: "Failed"}  # a status's last word; else "Finished"
ANY_MOMENT_S = 10.0  # an ETA closer than this (or past) reads "any moment now": a countdown never runs below zero


def bar(step: int, total: int) -> str:
    """"▰▰▰▱▱▱▱▱▱▱ 30%": `step` of `total` as ten cells and a whole percentage (rounded down: 100% only at the end)."""
    if total < 1 or not 0 <= step <= total:
        raise ValueError(f"step must be in 0..total and total ≥ 1, got step={step}, total={total}")
    percent = 100 * step // total
    filled = BAR_CELLS * step // total
    return f"{'▰' * filled}{'▱' * (BAR_CELLS - filled)} {percent}%"


def duration(seconds: float) -> str:
    """"12 s", "3 min", "1 h 5 min": a wait as a member reads it (whole seconds under a minute, rounded up)."""
    seconds = max(math.ceil(seconds), 1)
    if seconds < 60:
        return f"{seconds} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def any_moment(eta: datetime, now: datetime) -> bool:
    """Whether an ETA is at most ANY_MOMENT_S away, or past."""
    return eta - now <= timedelta(seconds=ANY_MOMENT_S)


def eta_words(eta: datetime, now: datetime) -> str:
    """A Discord relative timestamp (it counts down on every client), or "any moment now" when the estimate is at most
    ANY_MOMENT_S away or already past: a queued job never reads "ETA 2 minutes ago"."""
    return "any moment now" if any_moment(eta, now) else discord_time(eta)


def queued_text(job: JobRecord, position: int, eta: datetime, now: datetime) -> str:
    """A waiting job's status: its place in the queue and when it should be done."""
    return f"Queued #{position} · ETA {eta_words(eta, now)} · job #{job.id}\n> {shown(job.prompt)}"


def starting_text(job: JobRecord) -> str:
    return f"Starting · job #{job.id}\n> {shown(job.prompt)}"


def rendering_text(job: JobRecord, step: int, total: int, elapsed_s: float | None) -> str:
    """Denoising as a bar, with the time left at the rate measured so far (`elapsed_s` since the job started); the
    last step reads as encoding, which follows it (the frames are decoded, then the MP4 is made)."""
    if step >= total:
        return f"Encoding the video · job #{job.id}\n> {shown(job.prompt)}"
    parts = [f"Rendering {bar(step, total)}"]
    if elapsed_s is not None and elapsed_s > 0 and step > 0:
        parts.append(f"about {duration(elapsed_s / step * (total - step))} left")
    parts.append(f"job #{job.id}")
    return " · ".join(parts) + f"\n> {shown(job.prompt)}"


def uploading_text(job: JobRecord) -> str:
    return f"Uploading the video · job #{job.id}\n> {shown(job.prompt)}"


def finished_text(job: JobRecord, jump_url: str | None) -> str:
    """The status once the job's last message is posted (its video, or why there is none: a cancel, a failure, which
    go up as messages of their own once the token is gone): how it ended and where that went (a private video is
    right below it, seen by its requester only)."""
    where = jump_url if jump_url is not None else "your video is in the message below"
    return f"{ENDINGS.get(job.state, 'Finished')} · job #{job.id} · {where}"


def deleted_text(job: JobRecord) -> str:
    """The status of a job whose result was deleted (🗑 Delete): no longer a link to the message that went."""
    return f"Deleted · job #{job.id} · its video was deleted"


def clip_line(job: JobRecord) -> str:
    """"2.0 s clip · 16 frames at 8 fps · 1:1 (256×256)": what the video is."""
    p = job.params
    frames, fps = p.get("frames"), p.get("fps")
    parts = []
    if isinstance(frames, int) and isinstance(fps, int | float) and fps > 0:
        parts += [f"{frames / fps:.1f} s clip", f"{counted(frames, 'frame')} at {fps:g} fps"]
    elif isinstance(frames, int):
        parts.append(counted(frames, "frame"))
    parts.append(f"{p.get('aspect')} ({frame_text(p.get('width'), p.get('height'))})")
    return " · ".join(parts)


def origin_line(job: JobRecord) -> str | None:
    """What the video came from: "⬆️ Upscale of job #12", "🔁 Reroll of job #12", "✏️ Edited prompt of job #12"."""
    p = job.params
    if p.get("kind") == UPSCALE and p.get("source_job") is not None:
        return f"⬆️ Upscale of job #{p['source_job']}"
    if p.get("rerolled_from") is not None:
        return f"🔁 Reroll of job #{p['rerolled_from']}"
    if p.get("edited_from") is not None:
        return f"✏️ Edited prompt of job #{p['edited_from']}"
    return None


def settings_line(job: JobRecord, seed: int | None) -> str:
    """Seed, generation settings and what the clip is (/queue, the showcase)."""
    return f"{recipe_line(job, seed)} · {clip_line(job)}"


def recipe_line(job: JobRecord, seed: int | None) -> str:
    """What makes the same video again: the seed and the generation settings."""
    p = job.params
    parts = [f"seed `{seed}`"] if seed is not None else []
    parts += [counted(p.get("steps") or 0, "step"), f"guidance {p.get('guidance', 0):g}"]
    parts += [f"style `{p['style']}`"] if p.get("style") else []
    if p.get("sampler", "ddim") != "ddim":  # needed with the seed to make the same video again
        parts.append(f"sampler {p['sampler']}")
    return " · ".join(parts)


def result_text(delivered: Delivered) -> str:
    """The content of a finished job's message: requester, prompt, negative prompt, what the clip is and how long it
    took to render, seed and settings, what it was made from, notes."""
    job = delivered.job
    lines = [f"<@{job.user_id}> here is your video · job #{job.id}", f"> {shown(job.prompt)}"]
    if job.negative_prompt.strip():
        lines.append(f"Negative: {shown(job.negative_prompt, 300)}")
    lines.append(f"{clip_line(job)} · rendered in {delivered.gpu_s:.1f} s")
    lines.append(recipe_line(job, delivered.seed))
    origin = origin_line(job)
    if origin is not None:
        lines.append(origin)
    lines.extend(f"-# ⚠ {note}" for note in delivered.notes)
    return "\n".join(lines)
