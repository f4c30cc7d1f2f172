"""`python -m bot` refuses to start on bad settings with one line per problem; .env.example documents them all."""

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.app import run
from bot.gpu.models import ASPECTS
from bot.settings import load_settings
from storage import JobState, Repository, create_engine
from tests.bot.conftest import settings_for
from tests.bot.helpers import ROOT, SETTING_NAMES, START_S, WAIT, child_env


@pytest.fixture(autouse=True)
def signals_given_back():
    """main() hands SIGTERM and SIGINT to python -m bot's own handler for the rest of its process; here that process is
    pytest's, so each test gives them back (a later test met SIGINT raising SystemExit(0): t2v's Ctrl-C tests)."""
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in handlers.items():
        signal.signal(number, handler)


def test_python_m_bot_without_a_token_exits_2_with_one_clear_line(tmp_path: Path):
    env = child_env(T2V_MODEL="tiny-random", T2V_ALLOW_TINY="1", T2V_DEVICE="cpu")
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=START_S)

    assert result.returncode == 2
    assert result.stdout == ""
    line, note = result.stderr.splitlines()
    assert line.startswith("error: DISCORD_TOKEN is missing")
    assert note == f"note: no .env in {tmp_path} (the bot reads .env from its working directory)"


def test_a_misspelled_setting_is_named_beside_the_problem_it_caused(tmp_path: Path):
    (tmp_path / ".env").write_text("QUOTA_DEFAULTS=5\n")
    env = child_env(DISCORD_TOKN="a-token", T2V_MODEL="tiny-random", T2V_ALLOW_TINY="1", T2V_DEVICE="cpu")
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=START_S)

    assert result.returncode == 2
    error, *notes = result.stderr.splitlines()
    assert error.startswith("error: DISCORD_TOKEN is missing")
    assert sorted(notes) == [
        "note: DISCORD_TOKN (in the environment) is not a setting the bot reads, so it is ignored; did you mean "
        "DISCORD_TOKEN?",
        "note: QUOTA_DEFAULTS (in .env) is not a setting the bot reads, so it is ignored; did you mean QUOTA_DEFAULT?"]


def test_a_line_of_env_that_is_not_name_value_is_named_beside_every_other_problem_in_one_run(tmp_path: Path):
    (tmp_path / ".env").write_text("DISCORD_TOKEN\nT2V_DEVICE=gpu\nQUEUE_GLOBAL_CAP 7\n")  # a token never filled in
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=child_env(), capture_output=True,
                            text=True, timeout=START_S)

    assert result.returncode == 2
    bare, line, token, model, device = result.stderr.splitlines()  # python-dotenv's nameless warnings not repeated
    assert bare == ("error: .env line 1 is not NAME=value, so the bot would ignore it; correct it or make it a "
                    "comment (#)")
    assert line == ("error: .env line 3 is not NAME=value, so the bot would ignore it; correct it or make it a "
                    "comment (#)")
    assert token.startswith("error: DISCORD_TOKEN is missing") and model.startswith("error: T2V_MODEL is missing")
    assert device == "error: T2V_DEVICE=gpu is not cuda, cuda:N, cpu or a comma-separated list of them"


def test_a_malformed_env_line_alone_still_stops_the_bot(tmp_path: Path):
    (tmp_path / ".env").write_text("T2V_MODEL=tiny-random\nT2V_ALLOW_TINY=1\nT2V_DEVICE=cpu\nQUEUE_GLOBAL_CAP 7\n")
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path,
                            env=child_env(DISCORD_TOKEN="a.token-of.a-bot"), capture_output=True, text=True,
                            timeout=START_S)

    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: .env line 4 is not NAME=value, so the bot would ignore it; correct "
                                          "it or make it a comment (#)"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [".env"]  # nothing of a run started


def test_python_m_bot_with_a_bad_setting_answers_before_loading_anything_of_the_run(tmp_path: Path):
    env = child_env(DISCORD_TOKEN="a.token-of.a-bot", T2V_MODEL="tiny-random", T2V_ALLOW_TINY="1", T2V_DEVICE="gpu")
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "bot"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=START_S)
    imports = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    said = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in imports[1:]}

    assert result.returncode == 2 and said == ["error: T2V_DEVICE=gpu is not cuda, cuda:N, cpu or a comma-separated "
                                               "list of them"]  # its GPU check is skipped: it names no GPU
    assert "bot" in imported and "pydantic_settings" in imported  # the table really lists what was imported
    # the checks of what the other settings name run (torch: the GPUs, the weights); nothing of the bot's run does
    assert not imported & {"av", "discord", "sqlalchemy", "alembic", "aiosqlite", "asyncpg", "aiohttp"}
    assert list(tmp_path.iterdir()) == []  # no database, no media folder


def test_settings_copied_from_env_example_are_answered_with_every_problem_in_one_run(tmp_path: Path):
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")  # only DISCORD_TOKEN is left to fill in
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=child_env(CUDA_VISIBLE_DEVICES=""),
                            capture_output=True, text=True, timeout=START_S)

    assert result.returncode == 2
    token, device, model = result.stderr.splitlines()
    assert token.startswith("error: DISCORD_TOKEN is empty on .env line 18: set it to your bot token")  # its line
    assert device.startswith("error: T2V_DEVICE=cuda asks for every GPU but torch sees none; set T2V_DEVICE=cpu")
    assert model.startswith("error: T2V_MODEL=/srv/weights/modelscope: model source '/srv/weights/modelscope' is "
                            "neither 'tiny-random' nor an existing directory")  # README's path for the weights
    assert sorted(path.name for path in tmp_path.iterdir()) == [".env"]


def test_a_start_from_a_folder_without_env_says_where_env_was_looked_for(tmp_path: Path, monkeypatch, capsys):
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "docs").mkdir()
    (tmp_path / ".env").write_text("DISCORD_TOKEN=a.token-of.a-bot\nT2V_MODEL=tiny-random\nT2V_ALLOW_TINY=1\n")
    monkeypatch.chdir(tmp_path / "docs")  # cd docs && ../.venv/bin/python -m bot

    assert main() == 2
    said = capsys.readouterr().err.splitlines()
    assert said[0].startswith("error: DISCORD_TOKEN is missing") and said[1].startswith("error: T2V_MODEL is missing")
    assert f"note: no .env in {tmp_path / 'docs'} (the bot reads .env from its working directory)" in said

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("T2V_DEVICE", "gpu")
    assert main() == 2
    assert not any(".env" in line for line in capsys.readouterr().err.splitlines())  # it is here, and was read


def test_each_bad_setting_gets_its_own_line_and_the_token_is_never_echoed(tmp_path: Path, monkeypatch, capsys):
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", "Bot secret-token-value")
    monkeypatch.setenv("T2V_DEVICE", "gpu")
    monkeypatch.setenv("MAX_STEPS", "lots")

    assert main() == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 5  # token, device, max steps, and no model; then where .env was looked for
    assert all(line.startswith("error: ") for line in lines[:4]) and lines[4].startswith("note: no .env in ")
    assert not any("secret-token-value" in line for line in lines)


def test_a_listen_host_beside_a_wrong_setting_is_named_in_the_same_run(tmp_path: Path, monkeypatch, capsys):
    """Where the gallery and /healthz listen is checked with what the other settings name (bot.startup), so a wrong
    setting and a host this host cannot listen on are both answered by one start, not one after the other."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    for name, value in {"DISCORD_TOKEN": "a.token-of.a-bot", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1",
                        "T2V_DEVICE": "cpu", "MAX_STEPS": "lots", "HEALTH_HOST": "192.0.2.1"}.items():  # TEST-NET-1
        monkeypatch.setenv(name, value)

    assert main() == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("error: MAX_STEPS=lots ")
    assert lines[1:] == ["error: HEALTH_HOST=192.0.2.1 is not an address of this host, so nothing can listen on it; "
                         "set HEALTH_HOST to an address of this host, such as 127.0.0.1 (this host only) or 0.0.0.0 "
                         "(every address), or HEALTH_ENABLED=0"]
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_gallery_setting_leaves_the_health_sites_listen_check_to_run(tmp_path: Path, monkeypatch, capsys):
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    for name, value in {"DISCORD_TOKEN": "a.token-of.a-bot", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1",
                        "T2V_DEVICE": "cpu", "GALLERY_ENABLED": "1", "GALLERY_PORT": "lots",
                        "HEALTH_HOST": "192.0.2.1"}.items():
        monkeypatch.setenv(name, value)

    assert main() == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("=")[0] for line in lines] == ["error: GALLERY_PORT", "error: HEALTH_HOST"]


def test_env_example_documents_every_setting_and_loads():
    path = ROOT / ".env.example"
    lines = path.read_text().splitlines()
    assigned = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"([A-Z0-9_]+)=", line))}

    assert set(assigned) == SETTING_NAMES
    undocumented = [name for name, i in assigned.items() if not lines[i - 1].startswith("#")]
    assert undocumented == []
    settings = load_settings({"DISCORD_TOKEN": "a.token-of.a-bot"}, env_file=str(path))
    assert settings.t2v_model == "/srv/weights/modelscope" and settings.discord_guild_id is None  # as README's



async def test_run_wires_the_whole_bot_and_stops_on_sigterm(fake_discord, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(ASPECTS, "tiny", (64, 64))
    fake, url = fake_discord, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    bot = asyncio.create_task(run(settings_for(url, discord_guild_id=fake.guild.id)))
    await fake.wait_for(lambda: fake.gateway.connected and fake.guild_commands, timeout=START_S,
                        what="a synced bot")

    handle = await fake.slash("video", {"prompt": "a windmill turning at dusk", "aspect": "tiny"})
    result = await handle.wait_followup(lambda m: bool(m.attachments), timeout=WAIT)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(bot, WAIT)

    engine = create_engine(url)
    [job] = await Repository(engine).list_jobs()
    await engine.dispose()
    assert {"video", "queue", "cancel", "quota", "videomod"} <= {c["name"] for c in fake.guild_commands[fake.guild.id]}
    assert result.attachments[0].content_type == "video/mp4" and job.state == JobState.DONE


async def test_weights_no_device_can_load_stop_the_bot_at_start_rather_than_serve_nothing(
        fake_discord, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    from bot.errors import SettingsError
    from tests.t2v.helpers import modelscope_folder

    weights = modelscope_folder(tmp_path / "weights")  # whole files of no network: every load fails (run() alone)
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", t2v_model=str(weights))
    with pytest.raises(SettingsError) as raised:  # python -m bot: its one line, exit status 2 (systemd sees a failure)
        await asyncio.wait_for(run(settings), START_S)

    [line] = raised.value.lines
    assert line.startswith("no device could load the model, so the bot stops rather than serve no videos: "
                           f"{weights / 'VQGAN_autoencoder.pth'} has no 'first_stage_model.*' keys")
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [(r.getMessage().split(":", 1)[0], r.exc_info) for r in logged] == [
        ("loading the pipeline on cpu failed", None)]  # one line, no traceback


def test_python_m_bot_help_says_where_settings_come_from_and_arguments_are_refused(capsys):
    from bot.__main__ import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m bot") and ".env.example" in out
    assert main(["--token", "x"]) == 2
    assert capsys.readouterr().err.startswith("error: python -m bot takes no arguments (got --token x); set its")
