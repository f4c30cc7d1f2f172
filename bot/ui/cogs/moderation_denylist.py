"""The bodies of /videomod denylist and allowlist: add, remove, list, test (the commands live in moderation.py, and
the operator's on the shared list in moderation_operator.py). `guild_id` is the list changed: a server's own, or
GLOBAL for the shared one."""

from __future__ import annotations

import io
import logging
from collections import defaultdict

import discord
from discord import app_commands

from bot.characters import MESSAGE_CHARS, clipped, counted, shown
from bot.moderation.denylist_edits import DenylistEditor, PromptTest, list_name
from bot.moderation.policy import CATEGORIES, CATEGORY_TEXT, DenylistEntry
from bot.moderation.policy.entries import Kind
from bot.ui.cogs import MAX_CHOICES
from bot.ui.cogs.moderation_text import refusal_words
from bot.ui.replies import QUIET
from storage import GLOBAL

log = logging.getLogger(__name__)

CHOICE_CHARS = 100  # Discord's limit on an autocomplete choice's name and value
ENTRIES_CHARS = 300  # of the entries named on one line of a prompt test, before "… and N more"
Pattern = app_commands.Range[str, 1, 200]  # a denylist pattern or an allowlist phrase, as the commands take it
PATTERN_HELP = "A word, phrase, stem* or a + b, e.g. pool of blood, decapitat*, moon landing + staged"
CATEGORY_HELP = "The policy category the refusal names"
REMOVE_HELP = "The pattern as it was added (see /videomod denylist list)"


async def category_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """The policy categories that start with what the moderator typed."""
    return [app_commands.Choice(name=name, value=name) for name in CATEGORIES if name.startswith(current.lower())]


def pattern_choices(editor: DenylistEditor, current: str, kind: Kind,
                    guild_id: int) -> list[app_commands.Choice[str]]:
    """The list's patterns (a server's own, or the shared ones) containing what the moderator typed; those longer
    than a choice (CHOICE_CHARS) are left out, as clipped they would name no entry (the moderator types them)."""
    typed = current.lower()
    found = [entry.pattern for entry in editor.entries(kind, guild_id=guild_id)
             if typed in entry.pattern and len(entry.pattern) <= CHOICE_CHARS]
    return [app_commands.Choice(name=pattern, value=pattern) for pattern in found[:MAX_CHOICES]]


async def add(editor: DenylistEditor, interaction: discord.Interaction, pattern: str, category: str,
              kind: Kind, guild_id: int) -> None:
    """Add an entry to a list (InvalidInput explains a refusal) and confirm that it is live."""
    entry = await editor.add(interaction.user.id, pattern, category, kind, guild_id=guild_id)
    where = f" under {entry.category}" if kind == "deny" else ""
    scope = ("every server" if guild_id == GLOBAL else
             "this server" + (" (its own denylist entries only)" if kind == "allow" else ""))
    await interaction.response.send_message(
        f"Added “{shown(entry.pattern)}” to {list_name(kind, guild_id)}{where}; it applies in {scope} from the "
        "next prompt.", ephemeral=True, allowed_mentions=QUIET)


async def remove(editor: DenylistEditor, interaction: discord.Interaction, pattern: str, kind: Kind,
                 guild_id: int) -> None:
    """Remove an entry of a list, or say that there is none such (Denied: a server cannot remove a shared one)."""
    removed = await editor.remove(interaction.user.id, pattern, kind, guild_id=guild_id)
    name = list_name(kind, guild_id)
    if removed:
        text = f"Removed “{shown(pattern)}” from {name}; it applies from the next prompt."
    else:
        text = f"{name[0].upper()}{name[1:]} has no entry “{shown(pattern)}”; `/videomod denylist list` shows them all."
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=QUIET)


def list_file_text(entries: list[DenylistEntry]) -> str:
    """The entries in the shipped list's format (policy/default_denylist.txt: [category] headers, a pattern a line)."""
    sections: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        sections[entry.category].append(entry.pattern)
    return "\n".join(f"[{category}]\n" + "\n".join(patterns) + "\n" for category, patterns in sections.items())


def _sections(title: str, entries: list[DenylistEntry]) -> str:
    """One list's counts and entries by category."""
    deny = sum(entry.kind == "deny" for entry in entries)
    sections: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        sections[entry.category].append(shown(entry.pattern, 100))
    body = "".join(f"\n**{category}**: {', '.join(patterns)}" for category, patterns in sections.items())
    return (f"__{title}__ — denylist: {counted(deny, 'entry', 'entries')}; "
            f"allowlist: {counted(len(entries) - deny, 'phrase')}.{body}")


async def show(editor: DenylistEditor, interaction: discord.Interaction, guild_id: int) -> None:
    """The shared list and (in a server) the server's own, by category; inline when short, else as files in the
    shipped list format."""
    shared = editor.entries(guild_id=GLOBAL)
    lists = [("The shared list (every server; only the bot's operators change it)", "denylist.txt", shared)]
    if guild_id != GLOBAL:
        lists.append(("This server's own list", "denylist-this-server.txt", editor.entries(guild_id=guild_id)))
    body = "\n".join(_sections(title, entries) for title, _, entries in lists)
    if len(body) <= MESSAGE_CHARS:  # else the lists are sent as files
        await interaction.response.send_message(body, ephemeral=True, allowed_mentions=QUIET)
        return
    heads = "\n".join(_sections(title, entries).split("\n", 1)[0] for title, _, entries in lists)
    files = [discord.File(io.BytesIO(list_file_text(entries).encode()), name) for _, name, entries in lists]
    await interaction.response.send_message(f"{heads}\nThe full lists are attached.", ephemeral=True,
                                            allowed_mentions=QUIET, files=files)


def _entries(entries: tuple[DenylistEntry, ...]) -> str:
    return clipped([f"“{shown(entry.pattern, 100)}” ({entry.category})" for entry in entries], ENTRIES_CHARS,
                   sep=", ")


def test_text(result: PromptTest, prompt: str) -> str:
    """The gate's verdict on a prompt, with the entries that fire (moderators may see them)."""
    verdict, report = result.verdict, result.report
    lines = [f"Prompt: “{shown(prompt, 300)}”"]
    if verdict.allowed:
        lines.append("✅ Allowed: it would be generated.")
    elif verdict.reason == "denylist":
        lines.append(f"⛔ Refused by the denylist: {CATEGORY_TEXT.get(verdict.category or '', verdict.category)}.")
    else:
        lines.append(f"⛔ Refused ({refusal_words(verdict.logged or '')}): {verdict.message}")
    if report.denied:
        lines.append(f"Fires: {_entries(report.denied)}"
                     + (f"; the refusal names “{shown(verdict.matched)}”" if verdict.matched else ""))
    elif verdict.allowed or verdict.reason != "denylist":
        lines.append("No denylist entry fires.")
    if report.overridden:
        lines.append(f"Let through by the allowlist: {_entries(report.overridden)} (allowlist: "
                     f"{_entries(report.allowed)})")
    return clipped(lines)
