"""t2v.unexpanded: the one check of a ~ or $NAME no shell expanded, for every path t2v's command line and API take
(and the bot's path settings: tests/bot/test_paths.py)."""

from __future__ import annotations

import os

import pytest

import t2v.unexpanded
from t2v import preflight
from t2v.errors import InvalidRequest
from t2v.loader import check_source_name
from t2v.unexpanded import Unexpanded, find
from tests.t2v.helpers import refused

MEANT = "/srv/the-one-home/w"  # what the stand-in home answers: no real expansion gives it


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """The paths each caller asked the one home about; it answers that each is a ~ standing for MEANT."""
    seen: list[str] = []

    def home(value: str, **policy: bool) -> Unexpanded:
        seen.append(value)
        return Unexpanded("~", MEANT)

    monkeypatch.setattr(t2v.unexpanded, "find", home)
    return seen


def _lines(call) -> str:
    try:
        return str(call())
    except InvalidRequest as error:
        return str(error)


@pytest.mark.parametrize(("caller", "value"), [
    (lambda value: preflight.model_source("--model", value), "weights/ms"),
    (lambda value: preflight.lora("--lora", value), "style.safetensors:0.5"),
    (lambda value: check_source_name(value), "weights/ms"),  # load_pipeline's and convert's
])
def test_t2v_s_checks_of_a_path_ask_the_one_home_and_say_its_answer(asked, caller, value):
    line = _lines(lambda: caller(value))
    assert asked == [value]
    assert line.endswith(f"the ~ is not expanded here (a shell expands it only at the start of a word, not after = or "
                         f"inside quotes); write {MEANT}")


def test_the_command_line_s_path_options_ask_the_one_home_and_say_its_answer(asked, capsys, no_work):
    assert refused(["download", "weights/ms"], capsys) == [
        f"error: argument directory: weights/ms: the ~ is not expanded here (a shell expands it only at the start of a "
        f"word, not after = or inside quotes); write {MEANT}"]
    assert "weights/ms" in asked


def test_a_home_a_shell_would_leave_alone_is_no_problem_for_t2v_but_is_for_a_setting(tmp_path, monkeypatch):
    """A command's argument may be typed as it is meant (a folder really named ~, a ~user of no user here, which a
    shell keeps too); a setting never passed a shell, so every leading ~ is one."""
    monkeypatch.chdir(tmp_path)
    assert find("~no-such-user-here/w") is None
    assert find("~no-such-user-here/w", as_typed=False) == Unexpanded("~no-such-user-here", None)
    (tmp_path / "~").mkdir()
    assert find("~/w") is None
    assert find("~/w", as_typed=False) == Unexpanded("~", os.path.expanduser("~/w"))


def test_a_variable_is_found_only_where_asked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEIGHTS", "/srv/weights")
    assert find("${WEIGHTS}/ms") == Unexpanded("${WEIGHTS}", "/srv/weights/ms", "WEIGHTS")
    assert find("${WEIGHTS}/ms", variables=False) is None
    assert find("models/$WEIGHTS").typed == "$WEIGHTS"  # a part of its own, anywhere in the path
    assert find("price$WEIGHTS") is None  # not at the start of a part
