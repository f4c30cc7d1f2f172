"""The voice rules of docs/voice.md as checks: what a member or moderator reads has no identifiers, no setting names,
no raw exception text, and counts that agree with their nouns.

`problems(text)` names what breaks a rule in one piece of text; `bot_texts(fake)` gathers every piece of text the bot
sent to the fake Discord (message contents, embeds, button and menu labels, modal fields, command definitions), so
one fixture can walk a whole test session's words through the rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bot.settings import Settings
from tests.fakediscord import FakeDiscord

# code spans, links, mentions, timestamps and custom emoji are quoted or rendered by Discord, not words of ours
QUOTED = re.compile(r"```.*?```|`[^`]*`|<[@#&!:a-z]*[^>]*>|https?://\S+|\*\*|__", re.S)
IDENTIFIER = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")  # not_english, denylist_edit
SETTING = re.compile(r"\b(" + "|".join(sorted((name.upper() for name in Settings.model_fields), key=len,
                                              reverse=True)) + r")\b")
EXCEPTION = re.compile(r"\b(Traceback|[A-Z][a-zA-Z]+(Error|Exception)\b|errno|Errno)")
ONE_MANY = re.compile(r"(?<![\d.,])1 (videos|jobs|minutes|seconds|hours|days|weeks|frames|steps|users|members|"
                      r"servers|prompts|entries|patterns|refusals|requests|phrases)\b")
MANY_ONE = re.compile(r"(?<![\d.,])([02-9]|\d{2,}) (video|job|minute|second|hour|day|week|frame|step|user|member|"
                      r"server|prompt|entry|pattern|refusal|request|phrase)\b(?!-)")
PLACEHOLDER = "…"
NOT_OURS = "`<“\"‘'/["  # a text starting with a code span, a mention or timestamp, a quote, a command or a link
SENTENCE_END = re.compile(r"[.?!][)”’\"]*\s*$")  # a text ending so is sentences; a status, a label, a choice is not


def problems(text: str, *, operator: bool = False) -> list[str]:
    """What in `text` breaks docs/voice.md's rules, one line each (empty: none). An `operator` reply (to /videomod
    operator, which only the people who set the bot's environment can run) may name settings."""
    words = QUOTED.sub(" ", text)
    found = [f"identifier {m.group(0)!r}" for m in IDENTIFIER.finditer(words)]
    found += [] if operator else [f"setting name {m.group(0)!r}" for m in SETTING.finditer(words)]
    found += [f"exception text {m.group(0)!r}" for m in EXCEPTION.finditer(words)]
    found += [f"plural after 1: {m.group(0)!r}" for m in ONE_MANY.finditer(words)]
    found += [f"singular after {m.group(1)}: {m.group(0)!r}" for m in MANY_ONE.finditer(words)]
    found += lower_start(text) if SENTENCE_END.search(text) else []
    return found


def lower_start(text: str) -> list[str]:
    """A text whose first word of ours (after markdown, emoji and marks: `-# `, `🗑️ `, `#7`) starts in lower case:
    docs/voice.md's sentence case. A start that is not our word (NOT_OURS: `/video`, a quoted prompt) is left alone.
    `problems` asks it of sentences only (SENTENCE_END): a choice or a status may start with a style's or a user's
    word (`claymation — Clay figures`)."""
    for at, char in enumerate(text):
        if char in NOT_OURS:
            return []
        if char.isalnum():
            return [f"not sentence case: {text[at:].split()[0].rstrip('*_')!r}"] if char.islower() else []
    return []


def option_problems(description: str) -> list[str]:
    """A command's or option's description: a real one (not discord.py's "…"), in sentence case, within the rules."""
    if not description or description.strip() == PLACEHOLDER:
        return ["no description"]
    found = problems(description)
    return found if SENTENCE_END.search(description) else found + lower_start(description)


def _embed_texts(embed: dict[str, Any]) -> Iterator[str]:
    for key in ("title", "description"):
        if embed.get(key):
            yield embed[key]
    for item in embed.get("fields", ()):
        yield item.get("name", "")
        yield item.get("value", "")
    for key in ("footer", "author"):
        if embed.get(key, {}).get("text" if key == "footer" else "name"):
            yield embed[key].get("text") or embed[key].get("name")


def _component_texts(components: list[dict[str, Any]]) -> Iterator[str]:
    for component in components:
        for key in ("label", "placeholder", "title"):
            if component.get(key):
                yield component[key]
        for option in component.get("options", ()):
            yield option.get("label", "")
            if option.get("description"):
                yield option["description"]
        yield from _component_texts(component.get("components", []))


def message_texts(body: Any) -> Iterator[str]:
    """The words in one request body: content, embeds, components, a modal's title and fields, choices."""
    if not isinstance(body, dict):
        return
    data = body.get("data") if isinstance(body.get("data"), dict) else body  # interaction callbacks wrap it
    if isinstance(data.get("content"), str):
        yield data["content"]
    for embed in data.get("embeds") or ():
        yield from _embed_texts(embed)
    yield from _component_texts(data.get("components") or [])
    if data.get("title") and data.get("custom_id"):  # a modal
        yield data["title"]
    for choice in data.get("choices") or ():  # autocomplete
        yield choice.get("name", "")


def bot_texts(fake: FakeDiscord) -> Iterator[tuple[str, str, bool]]:
    """(where, text, to an operator) for every piece of text the bot sent in this session; "to an operator": the
    answer to a /videomod operator command run by one of the bot's operators."""
    for request in fake.requests:
        if request.method in ("POST", "PATCH", "PUT") and "/commands" not in request.path:
            for text in message_texts(request.json):
                yield f"{request.method} {request.route or request.path}", text, _to_operator(fake, request.path)


def _to_operator(fake: FakeDiscord, path: str) -> bool:
    parts = path.strip("/").split("/")
    if parts[0] == "interactions":
        record = fake.interactions.get(int(parts[1]))
    elif parts[0] == "webhooks" and len(parts) > 2:
        record = fake.token_interaction(parts[2])
    else:
        return False
    return record is not None and record.name.startswith("videomod operator ") and "operators only" not in "".join(
        str(callback) for callback in record.callbacks)


def command_descriptions(definitions: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(path, description) for every command, subcommand, option and choice name a user sees in the picker."""
    def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
        here = f"{path} {node['name']}" if path else f"/{node['name']}"
        yield here, node.get("description", "")
        for choice in node.get("choices") or ():
            yield f"{here}={choice['value']}", choice["name"][:1].upper() + choice["name"][1:]
        for option in node.get("options") or ():
            yield from walk(option, here)

    for definition in definitions:
        if definition.get("type", 1) == 1:  # chat-input commands; context-menu ones have no descriptions
            yield from walk(definition, "")
