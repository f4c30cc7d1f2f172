"""A required setting missing: the note under the error names where it goes for the way the bot is run. deploy/'s
Dockerfile and systemd unit say how (VIDEOBOT_DEPLOY); nothing is guessed from the machine, so a test run in a
container (CI's has /.dockerenv) reads as any other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bot.helpers import ROOT, START_S, child_env

DEPLOY = ROOT / "deploy"


def started(tmp_path: Path, **env: str) -> list[str]:
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=START_S, env=child_env(T2V_ALLOW_TINY="1", T2V_DEVICE="cpu", **env))
    assert result.returncode == 2
    return result.stderr.splitlines()


def test_under_systemd_the_note_names_the_units_environment_file_not_a_dot_env(tmp_path: Path):
    error, note = started(tmp_path, VIDEOBOT_DEPLOY="systemd", T2V_MODEL="tiny-random")

    assert error.startswith("error: DISCORD_TOKEN is missing")
    assert note == ("note: the service reads its settings from its unit's EnvironmentFile (/etc/videobot.env in "
                    "deploy/videobot.service; `systemctl cat videobot` shows yours): set DISCORD_TOKEN there, then "
                    "sudo systemctl restart videobot")


def test_in_docker_the_note_names_the_hosts_env_file_and_that_the_container_must_be_recreated(tmp_path: Path):
    *errors, note = started(tmp_path, VIDEOBOT_DEPLOY="docker")

    assert [line.split(" is ")[0] for line in errors] == ["error: DISCORD_TOKEN", "error: T2V_MODEL"]
    assert note.startswith("note: in its container the bot reads its settings from the container's environment: set "
                           "DISCORD_TOKEN and T2V_MODEL in the .env file on the host")
    assert "up -d (a restart keeps the old environment)" in note and f"{tmp_path}" not in note


@pytest.mark.parametrize(("file", "line"), [
    ("videobot.service", "Environment=VIDEOBOT_DEPLOY=systemd"),
    ("Dockerfile", "    VIDEOBOT_DEPLOY=docker"),  # the last of the image's ENV lines
])
def test_the_deploy_files_tell_the_bot_how_it_runs(file: str, line: str):
    assert line in (DEPLOY / file).read_text().splitlines()
