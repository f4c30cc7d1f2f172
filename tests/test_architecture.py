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
DISCORD_FREE_BOT_MODULES = {
    "policy", "queue", "executor", "jobs", "settings", "service", "moderation", "denylist_edits", "media", "gallery",
    "metrics", "health", "redaction",
}


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
