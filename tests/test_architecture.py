"""The dependency direction of DESIGN.md, enforced by parsing every module's imports."""

import ast
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
# bot modules that must stay Discord-free (testable without mocks)
DISCORD_FREE_BOT_MODULES = {"jobs", "gpu", "moderation", "web", "settings", "media", "redaction"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_in_the_allowed_direction(package):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imported_roots(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"forbidden imports: {offenders}"


def test_bot_core_modules_are_discord_free():
    offenders = {}
    for name in sorted(DISCORD_FREE_BOT_MODULES):
        module = ROOT / "bot" / name
        paths = sorted(module.rglob("*.py")) if module.is_dir() else [module.with_suffix(".py")]
        assert any(path.exists() for path in paths), f"bot/{name} is gone: update this test"
        offenders.update({str(p.relative_to(ROOT)): "discord" for p in paths
                          if p.exists() and "discord" in _imported_roots(p)})
    assert not offenders, f"these bot modules must not import discord: {offenders}"


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


@pytest.mark.parametrize("package", ["t2v"])  # bot and storage: add them here (both have none today)
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
