"""Log messages read as written: a logging call without arguments is not %-formatted, so a doubled %% in its message
shows as two characters (the fp8 load warning said '≈ 6%% faster')."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("t2v", "bot", "storage", "benchmarks", "deploy")
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def _unformatted_percents(path: Path) -> list[int]:
    """The lines of `path`'s logging calls whose one argument, the message, holds %%."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LEVELS
                and len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str) and "%%" in node.args[0].value):
            found.append(node.lineno)
    return found


def test_no_log_call_without_arguments_doubles_a_percent_sign():
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts]
    assert files
    assert [f"{path.relative_to(ROOT)}:{line}" for path in files for line in _unformatted_percents(path)] == []


def test_the_check_finds_a_doubled_percent_in_a_call_without_arguments(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('log.warning("fp8: ≈ 6%% faster " "than fp16")\nlog.info("%d%% done", 5)\n')
    assert _unformatted_percents(sample) == [1]
