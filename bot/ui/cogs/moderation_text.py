"""The moderators' answers as text: defaults, presets, blocks, channel rules, usage stats, the audit log, servers."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from bot.characters import MESSAGE_CHARS, clipped, counted, shown
from bot.gpu.models import DEFAULT_ASPECT
from bot.moderation.rules import QuotaDefault
from bot.moderation.servers import Presets
from bot.moderation.text import discord_time, ended
from bot.settings import Settings
from storage import AuditRecord, BlockRecord, ChannelRuleRecord, RoleQuotaRecord, ServerUsage, UsageStats
from t2v.config import SamplerDefaults

log = logging.getLogger(__name__)

LISTED = 20  # rows shown by the list answers before "… and N more"
LISTED_CHARS = 600  # of one line that lists ids or channels, before "… and N more"
# each RefusalReason (bot.errors) in a moderator's words
REFUSAL_WORDS = {"empty": "empty prompt", "too_long": "prompt too long", "not_english": "not English",
                 "denylist": "content policy", "user_cap": "member's queue full", "global_cap": "queue full",
                 "unavailable": "bot unavailable", "invalid": "invalid option", "blocked": "member blocked",
                 "channel": "channel not allowed", "quota": "quota used up"}


def defaults(default: QuotaDefault, roles: list[RoleQuotaRecord]) -> str:
    """The server default and the role defaults."""
    whose = "this server's own" if default.source == "server" else "the bot's"
    follows = not default.own_period and (default.source == "server" or roles)  # the bot's period, told as such
    period = f"{default.period}, the bot's period, which changes with it" if follows else default.period
    lines = [f"**Quota defaults** (per {period}, calendar periods in UTC)",
             f"Server default: {counted(default.limit, 'video')} ({whose})"]
    if roles:
        lines.append("Role defaults (a member gets the most generous of their roles; a personal limit beats both):")
    return clipped(lines + [f"• <@&{role.role_id}>: {counted(role.max_videos, 'video')}" for role in roles])


def blocked(block: BlockRecord, earlier: BlockRecord | None = None) -> str:
    """Confirmation of a block, naming the `earlier` one it replaces."""
    until = "permanently" if block.until is None else (
        f"until {discord_time(block.until, 'f')} ({discord_time(block.until)})")
    replaced = "" if earlier is None else (
        f" This replaces their earlier block ({_lasts(earlier)}, by <@{earlier.blocked_by}>: "
        f"{shown(earlier.reason, 100)}).")
    return f"Blocked <@{block.user_id}> {until}.{replaced} Reason shown to them: {ended(shown(block.reason))}"


def stopped(queued: int, running: int) -> str:
    """What a block stopped of the user's videos: nothing, or how many queued were cancelled and running stop."""
    parts = [f"{counted(queued, 'queued video')} {'is' if queued == 1 else 'are'} cancelled"] if queued else []
    if running:
        parts.append(f"{counted(running, 'running video')} {'stops at its' if running == 1 else 'stop at their'} "
                     "next step")
    return f" Their {' and '.join(parts)}." if parts else ""


def _lasts(block: BlockRecord) -> str:
    """How long a block holds: "permanent" or "until <date>"."""
    return "permanent" if block.until is None else f"until {discord_time(block.until, 'f')}"


def block_list(blocks: list[BlockRecord]) -> str:
    """The users blocked now."""
    if not blocks:
        return "Nobody is blocked."
    lines = [f"**Blocked users** ({len(blocks)})"]
    for block in blocks[:LISTED]:
        lines.append(f"• <@{block.user_id}> · {_lasts(block)} · by <@{block.blocked_by}> · {shown(block.reason, 100)}")
    return clipped(lines, more=max(len(blocks) - LISTED, 0))


def channel_rules(rules: list[ChannelRuleRecord], head: str | None = None) -> str:
    """Where /video may be used under these rules, under `head` if given."""
    allowed = [f"<#{rule.channel_id}>" for rule in rules if rule.allowed]
    denied = [f"<#{rule.channel_id}>" for rule in rules if not rule.allowed]
    lines = [] if head is None else [head]
    if allowed:
        lines.append(f"/video works only in: {_listed(allowed)}")
    else:
        lines.append("/video works in every channel" + (" except those turned off." if denied else "."))
    if denied:
        lines.append(f"Turned off in: {_listed(denied)}")
    return clipped(lines)


def _listed(names: list[str]) -> str:
    """Names (channels, server ids) on one line, cut to LISTED_CHARS."""
    return clipped(names, LISTED_CHARS, sep=", ")


def refusal_words(logged: str) -> str:
    """A refusal reason as the jobs log keeps it, in words: "denylist:violence" → "content policy (violence)"."""
    kind, _, detail = logged.partition(":")
    words = REFUSAL_WORDS.get(kind, kind.replace("_", " "))
    return f"{words} ({detail.replace('_', ' ')})" if detail else words


def stats(usage: UsageStats, period: str, *, everywhere: bool = False) -> str:
    """Requests, outcomes, refusal reasons, GPU time and the busiest users (of one server, or of every server)."""
    since = ("since the oldest request the bot keeps" if usage.since is None
             else f"since {discord_time(usage.since, 'f')}")
    scope = " of every server" if everywhere else ""
    lines = [f"**Usage{scope}, {'all time' if period == 'all' else f'last {period}'}** ({since})",
             f"Requests: {usage.requests}" + "".join(f" · {state} {count}"
                                                    for state, count in sorted(usage.by_state.items()))]
    if usage.refusals:
        lines.append("Refusals: " + " · ".join(f"{refusal_words(reason)} {count}"  # the bot's own words
                                               for reason, count in usage.refusals.items()))
    done = usage.by_state.get("done", 0)
    average = f" ({usage.gpu_s / done:.1f} s per video)" if done else ""
    lines.append(f"GPU time: {_duration(usage.gpu_s)}{average}")
    if usage.top_users:
        lines.append("Top users: " + " · ".join(f"<@{user.user_id}> {user.requests} ({_duration(user.gpu_s)})"
                                                for user in usage.top_users))
    return clipped(lines)


def audit(records: list[AuditRecord], whose: str = "") -> str:
    """The latest audit rows, newest first, of the log `whose` names (an operator reads several; a server's
    moderators only their own)."""
    if not records:
        return f"The audit log{whose} is empty."
    lines = [f"**Audit log**{whose}, newest first"]
    for record in records:
        mark = "" if record.allowed else " ⛔ refused"
        target = f" · {_target(record.target)}" if record.target else ""
        details = f" · {_details(record.details)}" if record.details else ""
        lines.append(f"{discord_time(record.at, 'f')} <@{record.actor_id}> {shown(record.action, 64)}{mark}"
                     f"{target}{details}")
    return clipped(lines)


def _details(details: Mapping[str, object]) -> str:
    """An audit row's details as a moderator reads them: "reason: spamming · until: 2026-12-06T10:00" (no JSON)."""
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, dict | list):
            return json.dumps(v, ensure_ascii=False)
        return "none" if v is None else str(v)
    return shown(" · ".join(f"{key.replace('_', ' ')}: {value(v)}" for key, v in details.items()), 150)


def _target(target: str) -> str:
    """An audit target ("user:1", "channel:2", "role:3", "pattern:x") as a mention where Discord has one."""
    kind, _, value = target.partition(":")
    mention = {"user": "<@{}>", "channel": "<#{}>", "role": "<@&{}>"}.get(kind)
    return mention.format(value) if mention and value.isdigit() else shown(target, 100)


def _duration(seconds: float) -> str:
    """Seconds as s, min or h."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def presets(values: Presets, settings: Settings) -> str:
    """A server's /video defaults beside the bot's."""
    bot = {"aspect": DEFAULT_ASPECT, "frames": settings.default_frames or "the model's",
           "steps": settings.default_steps, "sampler": SamplerDefaults.sampler,
           "guidance": settings.default_guidance, "negative": "none",
           "style": "none"}  # the style: set with /videostyle default
    given = values.given()
    lines = ["**/video defaults** of this server (an option a member leaves out takes it; then the bot's)"]
    for name, fallback in bot.items():
        if name in given:
            lines.append(f"• {name}: {shown(str(given[name]), 120)} (the bot's: {fallback})")
        else:
            lines.append(f"• {name}: the bot's, {fallback}")
    lines.append(f"-# Limits: steps up to {settings.max_steps}, frames up to {settings.max_frames}.")
    return clipped(lines)


def servers(usage: list[ServerUsage], names: Mapping[int, str], allowed: tuple[int, ...], days: int) -> str:
    """The servers the bot is in, busiest first, with their requests in the last `days` days (an operator's view)."""
    counts = {row.guild_id: row for row in usage}

    def requests(guild_id: int) -> int:
        return counts[guild_id].requests if guild_id in counts else 0

    lines = [f"**Servers** ({len(names)}; requests in the last {days} days)"]
    for guild_id in sorted(names, key=lambda guild_id: (-requests(guild_id), guild_id)):
        row = counts.get(guild_id)
        busy = f"{counted(row.requests, 'request')} by {counted(row.users, 'user')}" if row else "no requests"
        name = shown(names[guild_id], 80) or "(unavailable: name not known yet)"  # a Discord outage at start
        stray = " · ⚠️ not on ALLOWED_GUILD_IDS" if allowed and guild_id not in allowed else ""
        lines.append(f"• {name} · `{guild_id}` · {busy}{stray}")
    end = []  # kept below the list, however long it is
    gone = [f"`{row.guild_id}`" for row in usage if row.guild_id is not None and row.guild_id not in names]
    if gone:
        end.append(f"Servers the bot is no longer in: {_listed(gone)}")
    dms = counts.get(None)
    if dms is not None:
        end.append(f"Direct messages: {counted(dms.requests, 'request')} by {counted(dms.users, 'user')}")
    end.append("-# ALLOWED_GUILD_IDS: " + (_listed([f"`{g}`" for g in allowed]) if allowed
                                           else "not set (the bot stays in every server it is invited to)"))
    foot = "\n".join(end)
    return f"{clipped(lines, MESSAGE_CHARS - len(foot) - 1)}\n{foot}"
