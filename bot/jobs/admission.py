"""Admission: one verdict per request — queued, or refused and logged — decided once, one request per user at a time.

The checks run in this order, and the first that fails gives the reason: a block or a channel rule
(bot.moderation), the style (offered, and on in the server: bot.moderation.styles; named in any case, CLAYMATION
is claymation), the prompt and the options (the policy gate on the member's own text, a negative prompt that is
the prompt itself, the server's caps), the quota, then room (the bot is up, the user's cap and the queue's,
counting the requests still on their way in). A button's request while the job the same button of the same job
made is still queued or rendering (a double press) is answered so, and asks for nothing. A refused request is
written as a `refused` job row, so moderators' stats see it; an accepted one is written `queued` with the seed it
will render with, and pushed onto the fair queue. `precheck` runs the checks that do not depend on the prompt, before
a form asks for one (✏️ Edit prompt), writing nothing.

A blank prompt (nothing but spaces) never makes a spec: t2v refuses to make a request of it, in words of its own. The
command asks `refuse_blank` instead, which refuses it as the gate refuses every blank prompt, and logs it the same.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, NoReturn

from bot.errors import Denied, Refused
from bot.jobs.events import Announcer, Submitted
from bot.jobs.queue import FairQueue
from bot.jobs.running import Running
from bot.jobs.spec import JobSpec, Queued, Requester
from bot.moderation.gates import ServerGates
from bot.moderation.policy import NEGATIVE, PROMPT, PolicyGate
from bot.moderation.rules import Moderation
from bot.moderation.servers import above_cap, same_as_prompt
from bot.moderation.styles import ServerStyles
from bot.moderation.text import BUTTONS
from storage import JobRecord, Repository
from t2v.config import PICKED_SEEDS
from t2v.request import empty_prompt

log = logging.getLogger(__name__)



def blank(prompt: str) -> bool:
    """True for a prompt t2v makes no request of (GenerationRequest refuses it: nothing but spaces and invisible
    characters, t2v.request.empty_prompt): the command refuses it with `Admission.refuse_blank` before it builds the
    spec."""
    return empty_prompt(prompt) is not None


def _kept_from(spec: JobSpec) -> tuple[str, int] | None:
    """How and from which stored job a button made the request (🔁, ✏️, ⬆️: its negative prompt is that job's, which
    no button can change), or None for a /video."""
    if spec.upscale is not None:
        return "upscale", spec.upscale.job_id
    return spec.origin


def _negative_kept(kept_from: tuple[str, int]) -> str:
    """The end of a refusal of a negative prompt a button kept from a stored job (refused by a denylist entry added
    since, say), which no button can change: what is right, as the member can do it from there."""
    how, job_id = kept_from
    return (f" {BUTTONS[how]} keeps job #{job_id}'s negative prompt: run /video with the prompt and another "
            "`negative`, or `negative:none` for no negative prompt.")


def _storable(row: Mapping[str, Any]) -> dict[str, Any]:
    """A refused row's user text as typed, minus NUL, which the database cannot hold (PostgreSQL rejects it); an
    accepted request never has one (the gate refuses control characters)."""
    return {key: value.replace("\x00", "") if isinstance(value, str) else value for key, value in row.items()}


class Admission:
    """Decides each request once: Submitted, or Refused (with its reason and the refused row's id)."""

    def __init__(self, repo: Repository, gate: PolicyGate | ServerGates, queue: FairQueue[Queued], announce: Announcer,
                 clock: Callable[[], datetime], *, running: Running, moderation: Moderation | None, max_steps: int,
                 max_frames: int, unavailable: Callable[[], str | None], eta: Callable[[int, datetime], datetime],
                 wake: Callable[[], None]) -> None:
        self._repo, self._queue, self._running, self._announce, self._clock = repo, queue, running, announce, clock
        self.gate = gate if isinstance(gate, ServerGates) else ServerGates(gate)  # each server's prompt gate
        self.moderation = moderation  # blocks, channel rules and quotas; None: none of them apply
        self.styles = ServerStyles(moderation)  # the styles offered, and those each server turned off
        self.max_steps, self.max_frames = max_steps, max_frames  # the operator's caps (Discord's client too)
        self._unavailable, self._eta, self._wake = unavailable, eta, wake
        self._turns: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._on_their_way = 0  # accepted requests between their room check and their push (of any user)

    async def admit(self, requester: Requester, spec: JobSpec) -> Submitted:
        """Queue the request, or log it as refused and raise Refused; a user's requests are decided in turn."""
        spec = self._named_style(spec)
        async with self.turn(requester.user_id):  # a user's quota and cap are counted one request at a time
            self._check_not_twice(requester, spec)  # in the turn: a press's twin waits here until the first is queued
            try:
                await self._check(requester, spec)
            except Refused as refused:
                raise await self._logged(requester.row(spec), refused) from None
            job, position = await self._enqueue(requester, spec)
        self._wake()
        self._announce.count("accepted")
        return Submitted(job, position, self._eta(position, self._clock()))

    def _check_not_twice(self, requester: Requester, spec: JobSpec) -> None:
        """Denied when the same button (🔁 Reroll, ⬆️ Upscale) of the same job already made a job of the requester's
        that is queued or rendering: a double press, or a second one while the first's job waits, asks for nothing
        new. Not a refusal (no row is written, nothing counted): the first press's job stands. ✏️ Edit prompt asks
        for what was typed, so each submission is a request of its own; once the first job has ended, a press asks
        for another video."""
        kept = _kept_from(spec)
        if kept is None or kept[0] == "edit":
            return
        rendering = [(entry.job, entry.spec, None) for entry in self._running.of_user(requester.user_id)
                     if not entry.recorded and not entry.user_cancelled]  # not one being posted, nor one stopping
        queued = [(item.job, item.spec, position) for item, position in self._queue.jobs_of(requester.user_id)]
        twin = next(((job, position) for job, asked, position in rendering + queued
                     if asked is not None and _kept_from(asked) == kept), None)
        if twin is None:
            return
        (job, position), (how, source) = twin, kept
        where = "rendering" if position is None else f"queued (#{position} in the queue)"
        log.info("user %d pressed %s of job %d again; job %d from it is already %s", requester.user_id, how, source,
                 job.id, where)
        raise Denied(f"{BUTTONS[how]} of job #{source} is already {where} as job #{job.id}; pressing it again does "
                     "not ask for another.")

    async def refuse_blank(self, requester: Requester, prompt: str, negative: str = "", *,
                           private: bool = False) -> NoReturn:
        """Refuse a blank prompt (`blank`) as the gate refuses every blank prompt, zero-width spaces and all: logged
        as a refused row like any other refusal, before any work, nothing charged."""
        verdict = self.gate.check_text(prompt, PROMPT, requester.guild_id)
        assert verdict.reason is not None, "the gate refuses every prompt that t2v finds blank"
        refused = Refused(verdict.reason, verdict.message, logged=verdict.logged)
        raise await self._logged(requester.text_row(prompt, negative, {"private": private}), refused)

    async def _logged(self, row: Mapping[str, Any], refused: Refused) -> Refused:
        """The refusal once it is written as a refused job row (and counted), naming that row."""
        job = await self._repo.create_job(**_storable(row), refusal_reason=refused.logged, now=self._clock())
        self._announce.count(f"refused:{refused.reason}")
        return refused.recorded_as(job.id)

    def _named_style(self, spec: JobSpec) -> JobSpec:
        """The spec with its style named as the styles file names it, whatever its case (ServerStyles.named)."""
        return spec if spec.style is None else replace(spec, style=self.styles.named(spec.style))

    def turn(self, user_id: int) -> asyncio.Lock:
        """The user's admission lock (kept while some request holds or awaits it); a block's cancels take it too, so a
        request already past its block check is queued before they look (bot.jobs.service.cancel_blocked)."""
        lock = self._turns.get(user_id)
        if lock is None:
            lock = self._turns[user_id] = asyncio.Lock()
        return lock

    async def precheck(self, requester: Requester, spec: JobSpec) -> None:
        """Refused when `spec` would be whatever prompt it is given: a block or a channel rule, its style, its negative
        prompt, the caps, the quota, the bot down (the prompt and the queue's room are checked when it is asked). For
        a form that asks for the prompt (✏️ Edit prompt), so that a member is not left typing what can only be
        refused. Nothing is written: nothing was asked yet."""
        spec = self._named_style(spec)
        try:
            await self._check_standing(requester, spec)
            self._check_text(requester, spec, NEGATIVE)  # the stored job's, which the form does not change
            self._check_caps(spec)
            await self._check_allowance(requester, spec)
        except Refused as refused:
            log.info("user %d may not ask for a new prompt now (%s)", requester.user_id, refused.logged)
            raise

    async def _check(self, requester: Requester, spec: JobSpec) -> None:
        """Refused by the first failed check: block/channel, style, prompt/options, quota, room."""
        await self._check_standing(requester, spec)
        self._check_prompt(requester, spec)
        await self._check_allowance(requester, spec)
        self._queue.check_room(requester.user_id, reserved=self._on_their_way)  # the user's own: one at a time

    async def _check_standing(self, requester: Requester, spec: JobSpec) -> None:
        """Refused for a block, a channel rule, or a style that is not offered or is off in the server."""
        if self.moderation is not None:
            await self.moderation.check_access(requester)
        await self.styles.check(requester.guild_id, spec.style, _kept_from(spec))

    async def _check_allowance(self, requester: Requester, spec: JobSpec) -> None:
        """Refused when the quota has less than the spec's cost left, or the bot is down."""
        if self.moderation is not None:
            await self.moderation.check_quota(requester, spec.cost)
        reason = self._unavailable()
        if reason is not None:
            raise Refused("unavailable", f"Video generation is unavailable right now: {reason}.")

    def _check_prompt(self, requester: Requester, spec: JobSpec) -> None:
        """Refused when the requester's server's gate refuses any user text of the request (the prompt, the negative
        prompt: each reaches the model and a public message), the negative prompt is the prompt itself, or the options
        pass the server's caps."""
        self._check_text(requester, spec, PROMPT)
        self._check_text(requester, spec, NEGATIVE)
        problem = same_as_prompt(spec.prompt, spec.negative, _kept_from(spec))
        if problem is not None:
            raise Refused("invalid", problem, logged="invalid:negative")
        self._check_caps(spec)

    def _check_text(self, requester: Requester, spec: JobSpec, field: str) -> None:
        """Refused when the requester's server's gate refuses the request's prompt or negative prompt (`field`); a
        negative prompt a button kept from a stored job is refused saying what to do instead (`_negative_kept`)."""
        text, optional = (spec.prompt, False) if field == PROMPT else (spec.negative, True)
        verdict = self.gate.check_text(text, field, requester.guild_id, optional=optional)
        if verdict.allowed:
            return
        assert verdict.reason is not None
        if verdict.reason == "denylist":
            log.info("%s of user %d refused by denylist entry %r", field, requester.user_id, verdict.matched)
        kept = _kept_from(spec)
        message = verdict.message + (_negative_kept(kept) if field == NEGATIVE and kept is not None else "")
        raise Refused(verdict.reason, message, logged=verdict.logged)

    def _check_caps(self, spec: JobSpec) -> None:
        """Refused when the spec's steps or frames are above the operator's caps."""
        above = self.above_caps(spec, _kept_from(spec))
        if above is not None:
            name, problem = above
            raise Refused("invalid", problem, logged=f"invalid:{name}")

    def above_caps(self, spec: JobSpec, kept_from: tuple[str, int] | None = None, *,
                   clause: bool = False) -> tuple[str, str] | None:
        """(the option, why) when the spec's steps or frames are above the operator's caps (MAX_STEPS, MAX_FRAMES):
        a new request is refused so (one a button made from a stored job, `kept_from`, says what to do instead); a
        stored one a restart with lower caps finds fails when it runs (service: `clause`, the reason to go on after
        its words)."""
        request = spec.request
        for name, value, cap in (("steps", request.steps, self.max_steps), ("frames", request.frames,
                                                                             self.max_frames)):
            problem = above_cap(name, value, cap, kept_from, clause=clause)
            if problem is not None:
                return name, problem
        return None

    async def _enqueue(self, requester: Requester, spec: JobSpec) -> tuple[JobRecord, int]:
        """Write the queued row (with the seed it will render with) and push it; the place was checked with this
        request counted."""
        seed = spec.request.seed if spec.request.seed is not None else secrets.randbelow(PICKED_SEEDS)
        self._on_their_way += 1
        try:
            job = await self._repo.create_job(**requester.row(spec), seed=seed,
                                              interaction_token=requester.interaction_token, now=self._clock())
            return job, self._queue.push(Queued(job, spec))
        finally:
            self._on_their_way -= 1
