"""What the docs name is there: docs/architecture.md names every module (or its folder), and every path and dotted
name README.md, docs/*.md and pyproject.toml give exists (or is listed in REMOVED, with why)."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest
from discord import app_commands
from discord.ext import commands

from tests.test_architecture import PACKAGES, ROOT, _files, _parse

# --- the docs -------------------------------------------------------------------------------------------------------

# a path: a/b/c.py, bot/jobs/, docs/bench/*.json, tests/bot/{jobs,gpu}/ (not inside a word, a URL or another path)
PATH = re.compile(r"(?<![\w./-])((?:[\w.*-]|\{[\w,.-]*\})+/(?:[\w.*/-]|\{[\w,.-]*\})*)")
# What the docs name of code that is gone on purpose: the measurement records keep the names of what they measured.
REMOVED = {
    "t2v/kernels/temporal_conv.py": "perf-notes rows 29 and 49, benchmarks.md: kernels measured, then removed",
    "t2v.kernels.temporal_conv": "perf-notes rows 27, 47 and 49: removed after measuring",
    "t2v.fast.FrameTaps": "perf-notes row 35, benchmarks.md: removed after measuring",
}


def _tops() -> set[str]:
    """The repository's top-level files and folders (not the virtual environment scripts/setup makes)."""
    return {path.name for path in ROOT.iterdir()} - {".git", ".venv", ".pytest_cache", ".ruff_cache"}


def _named_paths(text: str) -> set[str]:
    """The repository paths a document names: `t2v/request.py`, folders (`bot/jobs/`), and a bare `` `name.py` ``
    after a path in the same paragraph or table row, which names a file in that path's folder ("`t2v/request.py`,
    `config.py`" names t2v/config.py; in bot/ui's row, `status.py` is bot/ui/status.py)."""
    named, tops = set(), _tops()
    for unit in re.split(r"\n\s*\n|\n(?=\|)", text):  # paragraphs, and each table row on its own
        folder = None
        for match in re.finditer(rf"{PATH.pattern}|`([\w.-]+\.py)`", unit):
            if match[1] and match[1].split("/")[0] in tops:
                folder = match[1][:match[1].rfind("/") + 1]
                named.add(match[1].rstrip("."))
            elif match[2] and folder is not None:
                named.add(folder + match[2])
    return named


@pytest.mark.parametrize("package", PACKAGES)
def test_the_architecture_doc_names_every_module_or_its_folder(package):
    """docs/architecture.md is the map an inheriting engineer reads: a module at a package's top level is named there
    by its path (`t2v/video.py`, or a bare `video.py` after another path of its folder) or its dotted name
    (`t2v.video`); a module deeper in by its folder (`bot/jobs/`). Another folder's file of the same name does not
    count (bot/ui/cogs/video.py names no t2v/video.py)."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    named = _named_paths(doc)
    missing = []
    for path in _files(package):
        relative = path.relative_to(ROOT)
        if path.name == "__init__.py" or "migrations" in relative.parts:
            continue
        if len(relative.parts) > 2:
            folder = f"{relative.parent.as_posix()}/"
            found = any(name.startswith(folder) for name in named)
        else:
            found = relative.as_posix() in named or re.search(rf"(?<![\w.]){package}\.{path.stem}\b", doc)
        if not found:
            missing.append(relative.as_posix())
    assert not missing, f"not in docs/architecture.md (name them in its maps): {missing}"


def test_the_architecture_doc_names_every_benchmark():
    """"Around the packages" names each script of benchmarks/ by its file (`benchmarks/served.py`, or a bare
    `scaleout.py` after it), so that a measurement docs/benchmarks.md cites can be found from the map."""
    named = _named_paths((ROOT / "docs" / "architecture.md").read_text())
    missing = [path.name for path in sorted((ROOT / "benchmarks").glob("*.py"))
               if path.name != "__init__.py" and f"benchmarks/{path.name}" not in named]
    assert not missing, f"benchmarks/ scripts docs/architecture.md does not name: {missing}"


def _alternatives(path: str) -> list[str]:
    """A path with its {a,b} groups spelled out: tests/bot/{jobs,gpu}/ → tests/bot/jobs/, tests/bot/gpu/."""
    group = re.search(r"\{([^}]*)\}", path)
    if group is None:
        return [path]
    return [each for choice in group[1].split(",")
            for each in _alternatives(path[:group.start()] + choice + path[group.end():])]


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "pyproject.toml"]


def test_every_path_the_docs_name_exists():
    """README.md, docs/*.md and pyproject.toml's comments name files of this repository (a glob: at least one)."""
    stale = []
    for document in _documents():
        for line_number, line in enumerate(document.read_text().splitlines(), 1):
            for match in PATH.finditer(line):
                path = match[1].rstrip(".")
                if path.split("/")[0] not in _tops() or path in REMOVED:
                    continue
                missing = [each for each in _alternatives(path) if not any(ROOT.glob(each.rstrip("/")))]
                if missing:
                    stale.append(f"{document.relative_to(ROOT)}:{line_number}: {', '.join(missing)}")
    assert not stale, "the docs name paths that do not exist (moved? say where it is now):\n" + "\n".join(stale)


def _top_level_names(path: Path) -> set[str]:
    """The names a module defines or imports at its top level (and lists in __all__ or a lazy table)."""
    tree, names = ast.parse(path.read_text()), set(_parse(path).tables)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node in tree.body:
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            names.update(item.value for item in getattr(node.value, "elts", ()) if isinstance(item, ast.Constant))
    return names


def test_every_module_and_name_the_docs_give_in_dotted_form_exists():
    """`bot.web.metrics`, `t2v.compiled.compile_in_background()`: the longest prefix that is a module exists, and the
    name after it is one that module defines or imports."""
    stale = []
    for document in _documents():
        for line_number, line in enumerate(document.read_text().splitlines(), 1):
            for match in re.finditer(r"(?<![\w./-])((?:t2v|bot|storage)(?:\.[A-Za-z_]\w*)+)", line):
                dotted = match[1]
                parts = dotted.split(".")
                found = next((k for k in range(len(parts), 0, -1) if _module_path(parts[:k])), 1)
                module = _module_path(parts[:found])
                if found < len(parts) and parts[found] not in _top_level_names(module) and not any(
                        dotted.startswith(gone) for gone in REMOVED):
                    stale.append(f"{document.relative_to(ROOT)}:{line_number}: {dotted}")
    assert not stale, "the docs name modules or names that do not exist:\n" + "\n".join(stale)


def _module_path(parts: list[str]) -> Path | None:
    folder = ROOT.joinpath(*parts)
    for path in (folder / "__init__.py", folder.with_suffix(".py")):
        if path.exists():
            return path
    return None


# --- the slash commands -----------------------------------------------------------------------------------------------

TABLES = ("videomod operator", "videomod", "videostyle")  # README's command tables write their rows below these


def _spelled(path: list[str], parameters: list[app_commands.Parameter]) -> str:
    """A command as README writes it: below its table's group (`quota set user limit`, `off style`), or from its
    slash when it has no table (`/cancel [job]`); options in their order, an optional one in brackets."""
    name = " ".join(path)
    table = next((group for group in TABLES if name.startswith(group + " ")), None)
    words = [name.removeprefix(table + " ") if table else f"/{name}"]
    return " ".join(words + [p.name if p.required else f"[{p.name}]" for p in parameters])


def _slash_commands() -> list[str]:
    """Every slash command the cogs define (read from their classes, no bot started), with /video as VideoCog
    registers it when the operator listed styles (its `style` option is there then)."""
    from types import SimpleNamespace

    from bot.ui.cogs import moderation, moderation_operator, quota, showcase, styles, video

    async def style_choices(interaction, typed):
        return []

    found = []
    for module in (moderation, quota, styles, video):
        for cls in vars(module).values():
            if isinstance(cls, type) and cls.__module__ == module.__name__:
                root = [cls.__cog_group_name__] if issubclass(cls, commands.GroupCog) else []
                found += [_spelled([*root, *([each.parent.name] if each.parent else []), each.name], each.parameters)
                          for each in vars(cls).values() if isinstance(each, app_commands.Command)]
    for group in (moderation_operator.OperatorGroup(*[None] * 5), showcase.ShowcaseGroup(None, None)):  # the client
        found += [_spelled(["videomod", group.name, each.name], each.parameters) for each in group.commands]  # adds
    stand_in = SimpleNamespace(service=SimpleNamespace(styles=SimpleNamespace(offered={"claymation": ""}),
                                                       model=SimpleNamespace(size=lambda aspect: (64, 64))),
                               style_choices=style_choices)
    command = video._video_command(stand_in, 100, 32)
    return [*found, _spelled(["video"], command.parameters)]


def _alternatives_of_slashes(text: str) -> set[str]:
    """The backquoted spans of a text, a word of choices spelled out: `channel allow/deny channel` is
    `channel allow channel` and `channel deny channel` (a word that starts with / is a command's name)."""
    spans = set()
    for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL)):
        words = [word.split("/") if "/" in word[1:] and not word.startswith("/") else [word] for word in span.split()]
        spans.update(" ".join(choice) for choice in itertools.product(*words))
    return spans


def test_readme_names_every_slash_command_with_its_options():
    """README gives every command with the options it has, in their order: `/cancel [job]` in its text, a /videomod
    or /videostyle subcommand in the first column of its table (`quota default-clear [role]`; the operators'
    `quota-default-clear`), where a moderator looks for what they can run."""
    readme = (ROOT / "README.md").read_text()
    rows = _alternatives_of_slashes("\n".join(re.findall(r"^\|([^|\n]+)\|", readme, re.MULTILINE)))
    anywhere = _alternatives_of_slashes(readme)
    commands_ = _slash_commands()
    assert {"/video prompt [negative] [seed] [steps] [guidance] [frames] [aspect] [private] [sampler] [style]",
            "quota set user limit", "off style", "/quota"} <= set(commands_)
    missing = [each for each in commands_ if each not in (anywhere if each.startswith("/") else rows)]
    assert not missing, "README does not name these commands as they are (renamed? an option added?):\n" + "\n".join(
        missing)


# --- .env.example -----------------------------------------------------------------------------------------------------

# .env.example's values that are not the setting's default, and why (every other value is the default, so a copied
# file changes nothing a default would do)
NOT_DEFAULTS = {
    "T2V_MODEL": "required: the example path README's commands use",
    "HISTORY_KEEP_DAYS": "unset keeps every row (an upgrade deletes nothing unasked); a new install gets a year",
}


def _env_example() -> dict[str, tuple[str, str]]:
    """.env.example's settings: NAME -> (the value it gives, the comment above it)."""
    found, comment = {}, []
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("# "))
        elif match := re.fullmatch(r"([A-Z0-9_]+)=(.*)", line):
            found[match[1]] = (match[2], " ".join(comment))
            comment = []
        else:
            comment = []
    return found


def test_env_example_gives_each_setting_its_default_and_its_range():
    """A ranged setting's comment gives its range as the start checks it (`1–100`; an id's is Discord's), and the
    value is the default unless NOT_DEFAULTS says why not."""
    from bot.settings import MIN_HISTORY_DAYS, RANGES, SNOWFLAKE_MAX, Settings, _plain, load_settings

    example = _env_example()
    defaults = Settings.model_fields
    read = load_settings({"DISCORD_TOKEN": "a.token-of.a-bot"}, env_file=str(ROOT / ".env.example"))
    off_default = sorted(name for name in example if name not in NOT_DEFAULTS and not (field := defaults[name.lower()])
                         .is_required() and getattr(read, name.lower()) != field.get_default())
    assert off_default == [], ".env.example gives these another value than their default (say why in NOT_DEFAULTS)"
    ranges = {**RANGES, "history_keep_days": (MIN_HISTORY_DAYS, RANGES["history_keep_days"][1])}  # or 0: forever
    unstated = sorted(name for name, (low, high) in ((f.upper(), r) for f, r in ranges.items())
                      if high != SNOWFLAKE_MAX and f"{_plain(low)}–{_plain(high)}" not in example[name][1])
    assert unstated == [], ".env.example does not give these settings' ranges (as `low–high`)"


# a name in capitals the docs give that is neither a setting nor a name of the code: a placeholder, and why
RECORDS = ("benchmarks.md", "perf-notes.md")  # measurement records: they name the environment each run had
PLACEHOLDERS = {"BOT_HOST": "docs/scale-out.md: the bot host's address in `ray start --address=BOT_HOST:6379`"}
CAPITALS = re.compile(r"(?<![\w-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?![\w-])")  # DATABASE_URL, T2V_MODEL, HF_HUB_…


def test_readme_names_every_setting_and_the_docs_no_setting_that_is_gone():
    """README names each setting where it matters (.env.example has them all, with their ranges), and an upper-case
    name README or docs/*.md gives is a setting, a name in the code (a constant, a variable of a library the code
    reads: TORCHINDUCTOR_CACHE_DIR, POSTGRES_PASSWORD in deploy/compose.yaml), or a placeholder: a removed or
    renamed setting is caught where a reader would still set it."""
    from bot.settings import Settings

    readme = (ROOT / "README.md").read_text()
    unnamed = sorted(name.upper() for name in Settings.model_fields if not re.search(rf"\b{name.upper()}\b", readme))
    assert unnamed == [], "settings README never names (say where they matter)"
    code = "\n".join(path.read_text(errors="replace") for package in (*PACKAGES, "deploy", "benchmarks", "tools")
                     for path in sorted((ROOT / package).rglob("*"))
                     if path.is_file() and path.suffix != ".txt" and "__pycache__" not in path.parts)
    known = set(Settings.model_fields) | set(PLACEHOLDERS)
    gone = sorted({f"{document.relative_to(ROOT)}: {name}" for document in _documents()
                   if document.suffix == ".md" and document.name not in RECORDS
                   for name in CAPITALS.findall(document.read_text())
                   if name.lower() not in known and name not in known and not re.search(rf"\b{name}\b", code)})
    assert gone == [], "the docs name settings or constants that are nowhere in the code (removed? renamed?)"


def test_the_defaults_readme_gives_after_a_setting_are_its_defaults():
    """"`SHUTDOWN_GRACE_S` (60 s)", "`STATUS_EDIT_INTERVAL_S`, 2 s": a number right after a setting's name is its
    default."""
    from bot.settings import Settings, _plain

    given = re.findall(r"`([A-Z][A-Z0-9_]+)`(?:\s+\(|, )(\d[\d.]*)(?:[;)]| s\b)", (ROOT / "README.md").read_text())
    assert len(given) >= 10
    wrong = [f"{name}: README {number}, default {_plain(Settings.model_fields[name.lower()].default)}"
             for name, number in given if name.lower() in Settings.model_fields
             and float(number.rstrip(".")) != Settings.model_fields[name.lower()].default]
    assert wrong == []


# --- sections named across the docs -----------------------------------------------------------------------------------

# `README "Weights"`, `docs/lora.md, "Styles in the bot"`, `docs/benchmarks.md ("Kernels and fp8"`: a document, then
# the title of one of its sections in quotes (a second one after "and" too; in code, `\"Weights\"` or 'Back up')
TITLE = r"\\?\"[^\"\\]+\\?\"|'[^']+'"
SECTION_REF = re.compile(rf"(README|(?:docs/)?[a-z][\w-]*\.md),? \(?((?:(?:{TITLE})(?: and )?)+)")


def _sections(document: Path) -> list[str]:
    """A document's section titles: its headings, and the bold lead-ins README's "Operate" uses (**Back up**)."""
    text = document.read_text()
    return [*re.findall(r"^#+ +(.+)$", text, re.MULTILINE), *re.findall(r"\*\*([^*\n]+)\*\*", text)]


def test_every_section_a_document_names_in_another_is_there():
    """A section named by its title (README "Weights", docs/benchmarks.md "fp8 with static scales") is the start of
    a heading or bold lead-in of that document: a renamed section leaves no reader hunting for it."""
    sources = [*_documents(), ROOT / ".env.example", *(path for package in (*PACKAGES, "benchmarks", "deploy")
                                                        for path in sorted((ROOT / package).rglob("*.py")))]
    stale, checked = [], 0
    for source in sources:
        text = re.sub(r"\s*\n\s*#?\s*", " ", source.read_text())  # a title broken over two comment lines too
        for match in SECTION_REF.finditer(text):
            name = "README.md" if match[1] == "README" else match[1].split("/")[-1]
            target = ROOT / name if name == "README.md" else ROOT / "docs" / name
            if not target.exists():
                continue
            titles = _sections(target)
            named = [title.strip("\\\"'") for title in re.findall(TITLE, match[2])]
            checked += len(named)
            stale += [f"{source.relative_to(ROOT)}: {match[1]} {title!r}" for title in named
                      if not any(each.strip().startswith(title) for each in titles)]
    assert checked >= 20
    assert not stale, "sections named that their document does not have (renamed?):\n" + "\n".join(stale)


# --- the t2v table's Imports column -----------------------------------------------------------------------------------


def _t2v_targets(path: Path) -> set[str]:
    """The t2v modules a t2v module imports, relative to t2v (`from t2v.kernels import fp8` → kernels.fp8)."""
    found = set()
    for each in _parse(path).imports:
        if each.module != "t2v" and not each.module.startswith("t2v."):
            continue
        for name in each.names or ("",):
            inner = f"{each.module}.{name}"
            dotted = inner if name and _module_path(inner.split(".")) else each.module
            found.add(dotted.removeprefix("t2v").removeprefix("."))
    return found - {""}


def test_the_t2v_tables_imports_column_names_what_each_module_imports():
    """docs/architecture.md's t2v table says what each row's modules import of t2v (besides each other): in the
    row's cell, or in its `module: ...` part where the cell has one per module. A package named covers its modules."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = doc[doc.index("| Where | What lives there | Imports (of t2v) |"):].split("\n\n")[0].splitlines()[2:]
    missing = []
    for row in table:
        where, _, cell = (column.strip() for column in row.strip("|").split("|"))
        if cell == "anything":
            continue
        paths = sorted({path for name in _named_paths(where) for path in
                        ((ROOT / name).rglob("*.py") if name.endswith("/") else [ROOT / name])})
        own = {path.relative_to(ROOT / "t2v").with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
               for path in paths}
        for path in paths:
            part = next((each for each in cell.split(";") if each.strip().startswith(f"{path.stem}:")), cell)
            for target in sorted(_t2v_targets(path) - own):
                prefixes = [".".join(target.split(".")[:k]) for k in range(1, target.count(".") + 2)]
                if not any(re.search(rf"(?<![\w.]){re.escape(prefix)}(?!\w)", part) for prefix in prefixes):
                    missing.append(f"{path.relative_to(ROOT)} imports t2v.{target}")
    assert not missing, "docs/architecture.md's t2v table does not say (Imports column):\n" + "\n".join(missing)
