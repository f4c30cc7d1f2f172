"""The bodies of /videomod denylist and allowlist: add, remove, list, test (the commands live in moderation.py)."""

from __future__ import annotations

import io
import logging
from collections import defaultdict

import discord
from discord import app_commands

from bot.moderation.denylist_edits import LIST_NAMES, DenylistEditor, PromptTest
from bot.moderation.policy import CATEGORIES, CATEGORY_TEXT, DenylistEntry
from bot.moderation.policy.entries import Kind
from bot.moderation.rules import inert

log = logging.getLogger(__name__)

QUIET = discord.AllowedMentions.none()
MESSAGE_CHARS = 1900  # a longer list is sent as a file
MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices


async def category_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """The policy categories that start with what the moderator typed."""
    return [app_commands.Choice(name=name, value=name) for name in CATEGORIES if name.startswith(current.lower())]


def pattern_choices(editor: DenylistEditor, current: str, kind: Kind) -> list[app_commands.Choice[str]]:
    """Listed patterns containing what the moderator typed."""
    typed = current.lower()
    found = [entry.pattern for entry in editor.entries(kind) if typed in entry.pattern]
    return [app_commands.Choice(name=pattern[:100], value=pattern[:100]) for pattern in found[:MAX_CHOICES]]


async def add(editor: DenylistEditor, interaction: discord.Interaction, pattern: str, category: str,
              kind: Kind) -> None:
    """Add an entry (InvalidInput explains a refusal) and confirm that it is live."""
    entry = await editor.add(interaction.user.id, pattern, category, kind)
    where = f" under {entry.category}" if kind == "deny" else ""
    await interaction.response.send_message(
        f"Added “{inert(entry.pattern)}” to the {LIST_NAMES[kind]}{where}; it applies from the next prompt.",
        ephemeral=True, allowed_mentions=QUIET)


async def remove(editor: DenylistEditor, interaction: discord.Interaction, pattern: str, kind: Kind) -> None:
    """Remove an entry, or say that there is none such."""
    removed = await editor.remove(interaction.user.id, pattern, kind)
    name = LIST_NAMES[kind]
    if removed:
        text = f"Removed “{inert(pattern)}” from the {name}; it applies from the next prompt."
    else:
        text = f"The {name} has no entry “{inert(pattern)}”; `/videomod denylist list` shows them all."
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=QUIET)


def list_file_text(entries: list[DenylistEntry]) -> str:
    """The entries in the shipped list's format (policy/default_denylist.txt: [category] headers, a pattern a line)."""
    sections: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        sections[entry.category].append(entry.pattern)
    return "\n".join(f"[{category}]\n" + "\n".join(patterns) + "\n" for category, patterns in sections.items())


async def show(editor: DenylistEditor, interaction: discord.Interaction) -> None:
    """The lists by category, inline when short, else as a file in the shipped list format."""
    entries = editor.entries()
    deny = sum(entry.kind == "deny" for entry in entries)
    head = f"**Denylist**: {deny} entries; **allowlist**: {len(entries) - deny} phrases."
    sections: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        sections[entry.category].append(inert(entry.pattern, 100))
    body = "\n".join(f"**{category}**: {', '.join(patterns)}" for category, patterns in sections.items())
    if len(head) + len(body) < MESSAGE_CHARS:
        await interaction.response.send_message(f"{head}\n{body}", ephemeral=True, allowed_mentions=QUIET)
        return
    data = io.BytesIO(list_file_text(entries).encode())
    await interaction.response.send_message(f"{head} The full list is attached.", ephemeral=True,
                                            allowed_mentions=QUIET, file=discord.File(data, "denylist.txt"))


def _entries(entries: tuple[DenylistEntry, ...]) -> str:
    return ", ".join(f"“{inert(entry.pattern, 100)}” ({entry.category})" for entry in entries)


def test_text(result: PromptTest, prompt: str) -> str:
    """The gate's verdict on a prompt, with the entries that fire (moderators may see them)."""
    verdict, report = result.verdict, result.report
    lines = [f"Prompt: “{inert(prompt, 300)}”"]
    if verdict.allowed:
        lines.append("✅ Allowed: it would be generated.")
    elif verdict.reason == "denylist":
        lines.append(f"⛔ Refused by the denylist: {CATEGORY_TEXT.get(verdict.category or '', verdict.category)}.")
    else:
        lines.append(f"⛔ Refused ({verdict.reason}): {verdict.message}")
    if report.denied:
        lines.append(f"Fires: {_entries(report.denied)}"
                     + (f"; the refusal names “{inert(verdict.matched)}”" if verdict.matched else ""))
    elif verdict.allowed or verdict.reason != "denylist":
        lines.append("No denylist entry fires.")
    if report.overridden:
        lines.append(f"Let through by the allowlist: {_entries(report.overridden)} (allowlist: "
                     f"{_entries(report.allowed)})")
    return "\n".join(lines)
