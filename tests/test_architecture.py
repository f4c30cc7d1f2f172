"""The folder map of docs/architecture.md, enforced by parsing every module's imports (lazy ones included)."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level modules it must never import
FORBIDDEN = {
    "t2v": {"discord", "sqlalchemy", "aiosqlite", "alembic", "asyncio", "threading", "bot", "storage", "aiohttp"},
    "storage": {"torch", "t2v", "discord", "bot", "einops", "open_clip"},
}
# Third-party packages that only some of bot/ may import (anywhere in a module): discord is the Discord layer's,
# torch the GPU side's (and only inside functions, so that importing the bot loads no torch), SQLAlchemy storage's.
ONLY_IN = {
    "discord": ("bot/ui/", "bot/app.py"),
    "yarl": ("bot/app.py",),
    "torch": ("bot/gpu/",),
    "ray": ("bot/gpu/ray_executor.py",),
    "sqlalchemy": (),
    "aiosqlite": (),
    "alembic": (),
    "aiohttp": ("bot/web/", "bot/ui/client.py"),  # the client: discord.py's network errors are aiohttp's
    "prometheus_client": ("bot/web/metrics.py",),
    "av": ("bot/media.py", "bot/jobs/upscale.py"),  # kept MP4s' posters, an upscale's source frames
}
# bot's folders (and top-level modules): the parts of bot each may import besides itself
MAY_IMPORT = {
    "bot.errors": set(),
    "bot.settings": {"bot.errors"},
    "bot.redaction": set(),
    "bot.tasks": set(),
    "bot.media": set(),
    "bot.retention": {"bot.media", "bot.tasks"},
    "bot.startup": {"bot.errors", "bot.settings", "bot.gpu"},
    "bot.gpu": {"bot.errors", "bot.settings"},
    "bot.moderation": {"bot.errors", "bot.settings"},
    "bot.jobs": {"bot.errors", "bot.settings", "bot.tasks", "bot.gpu", "bot.moderation"},
    "bot.web": {"bot.errors", "bot.settings", "bot.media", "bot.jobs"},
    "bot.ui": {"bot.errors", "bot.settings", "bot.tasks", "bot.media", "bot.retention", "bot.startup", "bot.gpu",
               "bot.jobs", "bot.moderation"},
    "bot.app": {"bot.errors", "bot.settings", "bot.tasks", "bot.media", "bot.startup", "bot.gpu", "bot.jobs",
                "bot.moderation", "bot.ui", "bot.web"},
    "bot.__main__": {"bot.errors", "bot.settings", "bot.redaction", "bot.startup", "bot.app", "bot.gpu"},
}


def _imported_roots(path: Path, *, lazy: bool = True) -> set[str]:
    """Top-level packages a module imports (only at module level when not `lazy`; relative imports are its own)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = ast.walk(tree) if lazy else _module_level(tree)
    roots = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _module_level(tree: ast.Module) -> list[ast.AST]:
    """The statements a module runs when imported (functions' bodies and TYPE_CHECKING blocks excluded)."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_in_the_allowed_direction(package):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imported_roots(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"forbidden imports: {offenders}"


@pytest.mark.parametrize("package", sorted(ONLY_IN))
def test_only_the_folders_that_own_a_dependency_import_it(package):
    owners = ONLY_IN[package]
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "bot").rglob("*.py"))
                 if package in _imported_roots(path) and not str(path.relative_to(ROOT)).startswith(owners)]
    assert not offenders, f"{package} is imported outside {owners or 'storage'}: {offenders}"


def test_the_gpu_side_imports_torch_only_when_a_model_is_used():
    eager = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "bot").rglob("*.py"))
             if "torch" in _imported_roots(path, lazy=False)]
    assert not eager, f"these modules import torch when they are imported: {eager}"


def _part(module: str) -> str:
    """The folder or top-level module of bot that a module belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_each_bot_folder_imports_only_the_parts_below_it():
    offenders = {}
    for module, targets in import_graph("bot").items():
        if module == "bot":
            continue
        part = _part(module)
        assert part in MAY_IMPORT, f"{module} is in no folder of the map: add its folder to MAY_IMPORT and docs"
        bad = {_part(target) for target in targets} - MAY_IMPORT[part] - {part, "bot"}
        if bad:
            offenders[module] = sorted(bad)
    assert not offenders, f"imports against the folder map (docs/architecture.md): {offenders}"


def test_importing_every_bot_module_loads_no_torch():
    """The whole bot imports without torch (and without numpy or PyAV): a model loads them when it is used."""
    modules = sorted(name for name in import_graph("bot") if name not in ("bot.__main__", "bot.gpu.ray_executor"))
    code = (f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
            "heavy = sorted(m for m in ('torch', 'open_clip', 'av', 'numpy') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


def _module_files(package: str) -> dict[str, Path]:
    """Dotted module name → file for every module of `package` (a package's own name for its __init__.py)."""
    files = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that the module `name` imports anywhere: top level, in functions, TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, up level - 1
                here = name if path.name == "__init__.py" else name.rpartition(".")[0]
                here = ".".join(here.split(".")[:len(here.split(".")) - node.level + 1])
                base = f"{here}.{base}" if base else here
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    return {module for module in found if module in known} - {name}


def import_graph(package: str) -> dict[str, set[str]]:
    """module → the modules of the same package it imports (lazy imports inside functions included)."""
    files = _module_files(package)
    return {name: _imported_modules(name, path, set(files)) for name, path in files.items()}


def import_cycles(package: str) -> list[list[str]]:
    """Every cycle of `package`'s import graph, one per strongly connected component (Tarjan), as a path."""
    graph, index, low, stack, cycles = import_graph(package), {}, {}, [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import a\n")
    (package / "c.py").write_text("import pkg.a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert import_graph("pkg")["pkg.sub.b"] == {"pkg.a"}
    assert import_cycles("pkg") == [["pkg.a", "pkg.sub.b"]]


@pytest.mark.parametrize("package", ["t2v", "bot", "storage"])
def test_no_import_cycles(package):
    assert import_cycles(package) == []


def test_t2v_library_never_imports_its_benchmark():
    graph = import_graph("t2v")
    offenders = {module: sorted(t for t in targets if t.startswith("t2v.bench"))
                 for module, targets in graph.items() if not module.startswith("t2v.bench") and module != "t2v.cli"}
    assert not {module: targets for module, targets in offenders.items() if targets}


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    cmd = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    result = subprocess.run([*cmd, "check", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_t2v_request_types_import_without_torch():
    """What bot.settings/jobs/batching/replies need from t2v loads neither torch nor open_clip (nor PyAV)."""
    code = ("import sys, t2v\n"
            "from t2v import GenerationRequest, InvalidRequest, TINY_RANDOM, LIMITS, GenerationCancelled\n"
            "from t2v import GenerationResult, Previews, WeightsError, animation, aspect_sizes\n"
            "from t2v.request import BATCH_KEYS, MAX_SEED\n"
            "GenerationRequest('a cat')\n"
            "heavy = sorted(m for m in ('torch', 'open_clip', 'av', 'numpy') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("package", ["t2v", "bot", "storage"])
def test_the_architecture_doc_names_every_module_or_its_folder(package):
    """docs/architecture.md is the map an inheriting engineer reads: a module at a package's top level is named there
    (`name.py`, `package/name.py` or `package.name`), a module deeper in by its folder (`bot/jobs/`)."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT)
        if path.name == "__init__.py" or "migrations" in relative.parts:
            continue
        if len(relative.parts) > 2:
            named = f"{relative.parent.as_posix()}/" in doc
        else:
            named = re.search(rf"[`/]{re.escape(path.name)}\b|\b{package}\.{path.stem}\b", doc) is not None
        if not named:
            missing.append(relative.as_posix())
    assert not missing, f"not in docs/architecture.md: {missing}"
