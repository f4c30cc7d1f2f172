"""The first minutes of `python -m bot`, run as the real child process: a bad value or a bad environment gets one
line naming the setting before any work (exit status 2, no database file, no model loaded); a database or Discord
out of reach is tried again for STARTUP_RETRY_S (tiny here), then one line (exit status 1); SIGTERM while it starts
is a clean stop (exit status 0). The retry itself runs on a clock the test moves.

Nothing sleeps: a child's waits are its own tiny STARTUP_RETRY_S, and the test waits on the child's log lines.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import StopRequested, Unreachable
from bot.startup import DEPLOYED_AS, MAX_DELAY_S, Retry, Stop, writable_folder
from tests.bot.helpers import START_S, WAIT, bot_child, child_env
from tests.clocks import Monotonic
from tests.fakediscord import FakeDiscord
from tests.net import free_port
from tests.permissions import lock_out

PASSWORD = "pg-Secret-4711"  # appears nowhere but in DATABASE_URL
TOKEN = "MTE3NzM0NTY3ODkwMTIzNDU2.GsTaRt.a-startup-bot-token-2b7c"


def env_for(tmp_path: Path, **settings: str | None) -> dict[str, str]:
    """A child's environment: the tiny model on the CPU, SQLite and media in tmp_path, retries for 0.2 s; then
    `settings` (None leaves one out)."""
    defaults = {"DISCORD_TOKEN": TOKEN, "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1", "T2V_DEVICE": "cpu",
                "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", "MEDIA_DIR": str(tmp_path / "media"),
                "HEALTH_ENABLED": "0", "STARTUP_RETRY_S": "0.2", "DISCORD_LOGIN_TIMEOUT_S": "0.2"}
    return child_env(**{**defaults, **settings})


def run_bot(tmp_path: Path, env: dict[str, str], *, prefix: tuple[str, ...] = (),
            options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`[prefix] python [options] -m bot` to its end."""
    return subprocess.run([*prefix, sys.executable, *options, "-m", "bot"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=START_S)


def said(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The child's lines that say something (not -X importtime's table)."""
    return [line for line in result.stderr.splitlines() if not line.startswith("import time:")]


def errors(lines: list[str]) -> list[str]:
    """The error lines: `error: ...` before logging starts, ERROR and CRITICAL records after."""
    return [line for line in lines if line.startswith("error: ") or " ERROR " in line or " CRITICAL " in line]


def no_work_done(tmp_path: Path, lines: list[str]) -> bool:
    """Neither the database nor the media folder was made, and no model was loaded."""
    return not (tmp_path / "bot.db").exists() and not (tmp_path / "media").exists() and not any(
        "pipeline loaded" in line for line in lines)


@pytest.fixture
def dead_port() -> int:
    """A local TCP port nothing listens on."""
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local TCP port that accepts connections (the kernel's backlog) and never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


# --- bad values: one line each, exit 2, before any work --------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown", "hint"), [
    ("nonsense://x", "nonsense://x", "stores its data in SQLite or PostgreSQL; use e.g. sqlite+aiosqlite:///"),
    (f"postgresql://videobot:{PASSWORD}@db:54x2/videobot", "postgresql://videobot:***@db:54x2/videobot",
     "the port '54x2' is not a number from 1 to 65535"),
    (f"mysql+aiomysql://videobot:{PASSWORD}@db/videobot", "mysql+aiomysql://videobot:***@db/videobot",
     "'mysql' is not a database the bot can use"),
    (f"postgresql+psycopg2://videobot:{PASSWORD}@db/videobot", "postgresql+psycopg2://videobot:***@db/videobot",
     "through asyncpg (asyncio), not 'psycopg2'; write postgresql+asyncpg:// or plain postgresql://"),
])
def test_a_database_url_it_cannot_use_is_one_line_among_the_other_settings_and_nothing_of_the_run_loads(
        tmp_path: Path, url: str, shown: str, hint: str):
    result = run_bot(tmp_path, env_for(tmp_path, DATABASE_URL=url, MAX_STEPS="lots"), options=("-X", "importtime"))
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in result.stderr.splitlines()[1:]
                if line.startswith("import time:")}

    assert result.returncode == 2
    [database, steps] = said(result)
    assert database.startswith(f"error: DATABASE_URL={shown}: ") and hint in database
    assert steps == "error: MAX_STEPS=lots is not a whole number: from 1 to 150, such as MAX_STEPS=100"
    assert PASSWORD not in result.stderr and no_work_done(tmp_path, said(result))
    assert not imported & {"discord", "sqlalchemy", "asyncpg", "aiosqlite", "alembic"}  # torch: the other checks'


def test_cuda_without_a_gpu_is_one_line_naming_t2v_device_before_the_database_is_made(tmp_path: Path):
    result = run_bot(tmp_path, env_for(tmp_path, T2V_DEVICE="cuda", CUDA_VISIBLE_DEVICES=""))

    assert result.returncode == 2
    assert said(result) == ["error: T2V_DEVICE=cuda asks for every GPU but torch sees none; set T2V_DEVICE=cpu, or "
                            "check CUDA_VISIBLE_DEVICES and the NVIDIA driver"]
    assert no_work_done(tmp_path, said(result))


def test_fp8_on_a_gpu_without_fp8_tensor_cores_is_one_line_naming_it(tmp_path: Path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    env = env_for(tmp_path, T2V_DTYPE="fp8", T2V_DEVICE="cuda:1")

    assert start_checks(env) == ["T2V_DTYPE=fp8 on cuda:1: fp8 needs compute capability 8.9 or later (Ada, Hopper, "
                                 "Blackwell); NVIDIA A100 is 8.0; use T2V_DTYPE=auto there"]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert start_checks(env) == []
    # a GPU that is not there is T2V_DEVICE's one line, not a second one about fp8 (nor a crash asking it)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: 1 / 0)
    assert start_checks({**env, "T2V_DEVICE": "cuda:3"}) == [
        "T2V_DEVICE=cuda:3: this machine has 2 CUDA GPUs; name cuda:0 to cuda:1, or cuda for all of them"]


def test_a_model_folder_that_does_not_exist_is_one_line_at_start(tmp_path: Path):
    missing = tmp_path / "models" / "modelscope-t2v"
    result = run_bot(tmp_path, env_for(tmp_path, T2V_MODEL=str(missing), T2V_ALLOW_TINY=None))

    assert result.returncode == 2
    [line] = said(result)
    assert line.startswith(f"error: T2V_MODEL={missing}: ") and "nor an existing directory" in line
    assert line.endswith("set T2V_MODEL to the folder that holds your weights")
    assert no_work_done(tmp_path, said(result))


def test_weights_cut_short_or_a_file_for_the_folder_are_one_line_each_at_start(tmp_path: Path):
    from bot.errors import SettingsError
    from bot.settings import load_settings
    from bot.startup import check_environment
    from tests.t2v.helpers import UNET, modelscope_folder

    folder = modelscope_folder(tmp_path / "weights")
    (folder / UNET).write_bytes((folder / UNET).read_bytes()[:1000])  # a copy cut short: the disk filled up
    env = {**env_for(tmp_path), "T2V_MODEL": str(folder), "UPSCALE_MODEL": str(folder / UNET)}
    with pytest.raises(SettingsError) as raised:
        check_environment(load_settings(env, env_file=None))

    weights, upscaler = raised.value.lines
    assert weights == (f"T2V_MODEL={folder}: {folder / UNET} is truncated: 1,000 bytes, and the end of its zip "
                       "archive, where a whole torch checkpoint lists its tensors, is missing; delete it and download "
                       f"it again (`python -m t2v download {folder}` fetches what is missing)")
    assert upscaler == (f"UPSCALE_MODEL={folder / UNET} is a file; set it to the folder it is in, {folder}, which "
                        "holds a model (modelscope layout)")


def test_the_checks_that_read_a_wrong_setting_are_skipped_and_the_others_run(tmp_path: Path):
    from bot.errors import SettingsError
    from bot.settings import load_what_validates
    from bot.startup import check_environment

    (tmp_path / "media").write_text("a file where the media folder goes")
    env = env_for(tmp_path, DISCORD_TOKEN=None, T2V_DEVICE="cuda:x", T2V_MODEL=str(tmp_path / "weights"),
                  MEDIA_DIR=str(tmp_path / "media"), T2V_ALLOW_TINY=None)
    reading = load_what_validates(env, env_file=None)
    assert reading is not None and reading[1] == {"discord_token", "t2v_device"}
    with pytest.raises(SettingsError) as raised:
        check_environment(*reading)

    model, media = raised.value.lines  # no line for the GPUs of a T2V_DEVICE that is not one (its own line says so)
    assert model.startswith(f"T2V_MODEL={tmp_path / 'weights'}: model source ")
    assert model.endswith("set T2V_MODEL to the folder that holds your weights")
    media_dir = tmp_path / "media"
    assert media == f"MEDIA_DIR={media_dir}: {media_dir} is a file, not a folder; set MEDIA_DIR to a folder"


def test_a_required_style_whose_lora_file_is_missing_is_one_line_at_start(tmp_path: Path):
    styles = tmp_path / "styles.toml"
    styles.write_text('[claymation]\nfile = "loras/claymation.safetensors"\n\n'
                      '[sepia]\nfile = "loras/sepia.safetensors"\noptional = true\n')
    result = run_bot(tmp_path, env_for(tmp_path, STYLES_FILE=str(styles)))

    assert result.returncode == 2
    [line] = said(result)  # the optional style's missing file stops nothing
    assert line.startswith(f"error: STYLES_FILE={styles} [claymation] file {tmp_path / 'loras/claymation.safetensors'}")
    assert line.endswith("or mark the style optional = true to start without it")
    assert no_work_done(tmp_path, said(result))


def test_no_model_at_all_asks_for_the_weights_and_offers_tiny_random_for_tests_only(tmp_path: Path):
    result = run_bot(tmp_path, env_for(tmp_path, T2V_MODEL=None, T2V_ALLOW_TINY=None))

    assert result.returncode == 2
    line, note = said(result)
    assert note == f"note: no .env in {tmp_path} (the bot reads .env from its working directory)"
    assert line.startswith("error: T2V_MODEL is missing: set it to the folder of your weights")
    assert line.endswith("for tests only, T2V_MODEL=tiny-random with T2V_ALLOW_TINY=1 serves random noise")


def test_folders_the_bot_may_not_write_are_permission_denied_naming_the_user_and_the_file(tmp_path: Path):
    media, database = tmp_path / "shared" / "media", tmp_path / "bot.db"
    cache = tmp_path / "shared" / "compile-cache"
    media.parent.mkdir()
    media.parent.chmod(0o555)
    database.touch(mode=0o600)
    database.chmod(0o000)
    # root may write anywhere: without these two capabilities it meets the permission bits like any user
    as_a_user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    assert not as_a_user or shutil.which("setpriv"), "util-linux's setpriv runs the child as a user would"
    env = env_for(tmp_path, MEDIA_DIR=str(media), T2V_OPTIMIZE="on", T2V_COMPILE_CACHE=str(cache))  # compiles here
    result = run_bot(tmp_path, env, prefix=tuple(as_a_user))

    assert result.returncode == 2
    [media_line, database_line, cache_line] = said(result)
    user = f"user {_user()}"
    assert media_line.startswith(f"error: MEDIA_DIR={media}: permission denied: {user} may not create files in "
                                 f"{media.parent}; make it writable for that user")
    assert database_line.startswith(f"error: DATABASE_URL=sqlite+aiosqlite:///{database}: permission denied: {user} "
                                    f"may not read and write {database} (uid {os.geteuid()}, mode 0)")
    assert cache_line.startswith(f"error: T2V_COMPILE_CACHE={cache}: permission denied: {user} may not create files "
                                 f"in {cache.parent}; make it writable for that user")
    assert not media.exists() and not cache.exists() and database.stat().st_size == 0


def test_a_folder_on_a_read_only_file_system_says_how_the_systemd_unit_makes_it_writable(monkeypatch):
    """deploy/videobot.service's ProtectSystem=strict makes every folder but /var/lib/videobot read-only: a MEDIA_DIR
    elsewhere meets EROFS, which permissions and chown cannot fix."""
    read_only = OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr("t2v.preflight.nearest_folder", lambda folder: (Path("/srv"), read_only))

    line = writable_folder("MEDIA_DIR", "/srv/videobot/media", Path("/srv/videobot/media"))

    assert line == (f"MEDIA_DIR=/srv/videobot/media: /srv is on a read-only file system for user {_user()}; set "
                    "MEDIA_DIR to a folder it may write, or, under the systemd unit (ProtectSystem=strict: only "
                    "/var/lib/videobot is writable), add the folder to ReadWritePaths= with `systemctl edit videobot`")


def start_checks(env: dict[str, str]) -> list[str]:
    """The lines check_environment refuses the settings of `env` with (none: it passes)."""
    from bot.errors import SettingsError
    from bot.settings import load_settings
    from bot.startup import check_environment

    settings = load_settings(env, env_file=None)
    try:
        check_environment(settings)
    except SettingsError as error:
        return error.lines
    return []


def test_paths_under_a_folder_the_user_may_not_enter_are_one_line_each_naming_that_folder(tmp_path: Path,
                                                                                         monkeypatch):
    """/home/alice, mode 0700, and the bot another user: Python 3.11's Path.exists() raises PermissionError there."""
    home = lock_out(monkeypatch, tmp_path / "alice")
    database, model, media, cache = home / "bot.db", home / "model", home / "media", home / "cache"
    env = env_for(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{database}", T2V_MODEL=str(model),
                  T2V_ALLOW_TINY=None, MEDIA_DIR=str(media), T2V_OPTIMIZE="on", T2V_COMPILE_CACHE=str(cache))

    user = f"user {_user()}"
    assert start_checks(env) == [
        f"T2V_MODEL={model}: permission denied: {user} may not enter {home}, so it cannot read {model}; let that "
        f"user in (chown, or chmod o+x {home}) or move the model to a folder it may read",
        f"MEDIA_DIR={media}: permission denied: {user} may not create files in {home}; make it writable for that user "
        f"(chown or chmod) or set MEDIA_DIR to a folder it may write ({DEPLOYED_AS})",
        f"DATABASE_URL=sqlite+aiosqlite:///{database}: permission denied: {user} may not enter {home}, so it cannot "
        f"reach {database}; let that user in (chown, or chmod o+x {home}) or keep the database in a folder it may "
        f"write ({DEPLOYED_AS})",
        f"T2V_COMPILE_CACHE={cache}: permission denied: {user} may not create files in {home}; make it writable for "
        f"that user (chown or chmod) or set T2V_COMPILE_CACHE to a folder it may write ({DEPLOYED_AS})"]


def test_an_existing_database_on_a_read_only_file_system_says_how_the_systemd_unit_makes_it_writable(
        tmp_path: Path, monkeypatch):
    database = tmp_path / "bot.db"
    database.touch()
    real_open = open

    def read_only(file, mode="r", *args, **kwargs):
        if Path(file) == database and "+" in mode:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only)
    assert start_checks(env_for(tmp_path)) == [
        f"DATABASE_URL=sqlite+aiosqlite:///{database}: {database} is on a read-only file system for user {_user()}; "
        "name a database file in a folder it may write, or, under the systemd unit (ProtectSystem=strict: only "
        "/var/lib/videobot is writable), add the folder to ReadWritePaths= with `systemctl edit videobot`"]


def test_a_database_under_a_file_is_one_line_for_database_url_and_none_for_the_compile_cache_it_derives(
        tmp_path: Path):
    (tmp_path / "afile").write_text("not a folder")
    url = f"sqlite+aiosqlite:///{tmp_path / 'afile' / 'x.db'}"

    assert start_checks(env_for(tmp_path, DATABASE_URL=url, T2V_OPTIMIZE="on")) == [
        f"DATABASE_URL={url}: {tmp_path / 'afile'} is a file, not a folder; name a database file in a folder"]


def test_a_postgresql_driver_that_cannot_be_imported_is_one_line_naming_it_and_the_pip_command(tmp_path: Path,
                                                                                               monkeypatch):
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # a broken install: `import asyncpg` fails
    env = env_for(tmp_path, DATABASE_URL=f"postgresql://videobot:{PASSWORD}@db/videobot")

    [line] = start_checks(env)
    assert line.startswith("DATABASE_URL=postgresql://videobot:***@db/videobot: postgresql is reached through the "
                           "asyncpg driver, which cannot be imported here (")
    assert line.endswith(f"install it into this Python: {sys.executable} -m pip install asyncpg")


def _user() -> str:
    from t2v.errors import current_user

    return current_user()


# --- out of reach: tried again for STARTUP_RETRY_S, one line, exit 1 -------------------------------------------------


def test_an_unreachable_postgresql_is_tried_again_then_one_line_and_exit_1_with_the_password_never_logged(
        tmp_path: Path, dead_port: int):
    url = f"postgresql://videobot:{PASSWORD}@127.0.0.1:{dead_port}/videobot"
    result = run_bot(tmp_path, env_for(tmp_path, DATABASE_URL=url, LOG_LEVEL="DEBUG"))
    lines = said(result)

    assert result.returncode == 1
    [line] = errors(lines)
    assert "cannot reach the database at postgresql://videobot:" in line and "connection refused" in line
    assert "(STARTUP_RETRY_S=0.2); check that PostgreSQL runs and accepts connections at " in line
    assert f" at 127.0.0.1:{dead_port} (DATABASE_URL's host and port)" in line
    assert any("trying again in" in line for line in lines)  # tried more than once
    assert "Traceback" not in result.stderr and " DEBUG " in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert no_work_done(tmp_path, lines)


def test_discord_out_of_reach_is_tried_again_then_one_line_and_exit_1(tmp_path: Path, dead_port: int):
    api = f"http://127.0.0.1:{dead_port}/api/v10"
    env = env_for(tmp_path, DISCORD_API_BASE=api, DISCORD_GATEWAY_URL=f"ws://127.0.0.1:{dead_port}")
    result = run_bot(tmp_path, env)
    lines = said(result)

    assert result.returncode == 1
    [line] = errors(lines)
    assert line.endswith("check DISCORD_API_BASE and that the proxy there is running")
    assert f"cannot reach Discord at {api}: Cannot connect to host 127.0.0.1:{dead_port}" in line
    assert any("trying again in" in line for line in lines) and "Traceback" not in result.stderr
    assert not any("voice will NOT be supported" in line for line in lines)  # the bot has no voice: no warnings
    assert not any("setup plugin" in line for line in lines)  # nor alembic's plugin set-up at every start
    assert not any("pipeline loaded" in line for line in lines)


async def test_a_gateway_out_of_reach_while_the_api_answers_is_tried_again_then_one_line_and_exit_1(
        tmp_path: Path, fake_discord: FakeDiscord, dead_port: int):
    gateway = f"ws://127.0.0.1:{dead_port}"
    env = env_for(tmp_path, DISCORD_TOKEN=fake_discord.token, DISCORD_API_BASE=fake_discord.api_url,
                  DISCORD_GATEWAY_URL=gateway, DISCORD_GUILD_ID=str(fake_discord.guild.id))
    async with bot_child(tmp_path, env) as child:
        _, stderr = await asyncio.wait_for(child.communicate(), START_S)
    lines = stderr.decode().splitlines()

    assert child.returncode == 1
    [line] = errors(lines)
    assert f"cannot reach Discord's gateway at {gateway}: " in line and "Connect call failed" in line
    assert line.endswith("check DISCORD_GATEWAY_URL and that the proxy there is running")
    assert [r.status for r in fake_discord.requests_to("GET /users/@me")] == [200]  # the API answered, once
    assert any("trying again in" in line for line in lines) and not any("Traceback" in line for line in lines)
    assert not any("pipeline loaded" in line for line in lines)  # given up on before the model loads


def test_a_discord_that_accepts_and_never_answers_is_given_up_on_after_the_login_timeout(tmp_path: Path,
                                                                                        silent_port: int):
    api = f"http://127.0.0.1:{silent_port}/api/v10"
    result = run_bot(tmp_path, env_for(tmp_path, DISCORD_API_BASE=api, STARTUP_RETRY_S="0.5"))
    lines = said(result)

    assert result.returncode == 1
    [line] = errors(lines)
    assert f"cannot reach Discord at {api}: no answer within 0.2 s (DISCORD_LOGIN_TIMEOUT_S); tried " in line
    assert "Traceback" not in result.stderr and not any("pipeline loaded" in line for line in lines)


# --- SIGTERM while starting: a clean stop, exit 0 --------------------------------------------------------------------


async def started_then_terminated(tmp_path: Path, env: dict[str, str], waiting_for: str) -> tuple[int, list[str]]:
    """Start a child, send it SIGTERM once it logs `waiting_for`; its exit status and lines."""
    async with bot_child(tmp_path, env) as child:
        assert child.stderr is not None
        lines: list[str] = []
        while not any(waiting_for in line for line in lines):
            line = await asyncio.wait_for(child.stderr.readline(), START_S)
            assert line, f"the child ended before it logged {waiting_for!r}:\n" + "\n".join(lines)
            lines.append(line.decode().rstrip())
        child.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(child.stderr.read(), START_S)  # stopping a loaded model's worker takes a while
        return await asyncio.wait_for(child.wait(), START_S), lines + rest.decode().splitlines()


async def test_sigterm_during_a_login_that_gets_no_answer_stops_cleanly_with_exit_0(tmp_path: Path,
                                                                                   silent_port: int):
    env = env_for(tmp_path, DISCORD_API_BASE=f"http://127.0.0.1:{silent_port}/api/v10", STARTUP_RETRY_S="600",
                  DISCORD_LOGIN_TIMEOUT_S="600")
    code, lines = await started_then_terminated(tmp_path, env, "logging in using static token")

    assert code == 0
    assert any("SIGTERM received; shutting down" in line for line in lines)
    assert any("stopped before the bot was running" in line for line in lines)
    assert errors(lines) == [] and not any("Traceback" in line for line in lines)


async def test_sigterm_while_the_model_loads_after_the_login_stops_cleanly_with_exit_0(tmp_path: Path,
                                                                                       fake_discord: FakeDiscord):
    env = env_for(tmp_path, DISCORD_TOKEN=fake_discord.token, DISCORD_API_BASE=fake_discord.api_url,
                  DISCORD_GATEWAY_URL=fake_discord.gateway_url, DISCORD_GUILD_ID=str(fake_discord.guild.id))
    # the setup ends with the command sync: held unanswered, it keeps the child inside the setup until the SIGTERM
    fake_discord.hold_next(f"PUT /applications/{fake_discord.app_id}/guilds/*/commands")
    code, lines = await started_then_terminated(tmp_path, env, "t2v.loader: loaded")  # inside the client's setup

    assert code == 0 and any("stopped before the bot was running" in line for line in lines)
    assert errors(lines) == [] and not any("Traceback" in line for line in lines)


async def test_sigterm_while_waiting_for_the_database_stops_cleanly_with_exit_0(tmp_path: Path, dead_port: int):
    env = env_for(tmp_path, DATABASE_URL=f"postgresql://videobot@127.0.0.1:{dead_port}/videobot",
                  STARTUP_RETRY_S="600")
    code, lines = await started_then_terminated(tmp_path, env, "trying again in")

    assert code == 0 and any("stopped before the bot was running" in line for line in lines)
    assert errors(lines) == [] and not any("Traceback" in line for line in lines)


# --- the retry itself, on a clock the test moves ---------------------------------------------------------------------


def refused(error: Exception) -> str | None:
    return "connection refused" if isinstance(error, ConnectionRefusedError) else None


async def test_retry_backs_off_doubling_to_a_cap_and_gives_up_with_one_line_when_the_budget_is_spent():
    clock, tries = Monotonic(), []

    async def attempt() -> None:
        tries.append(clock.t)
        raise ConnectionRefusedError

    retry = Retry(100.0, Stop(), clock=clock, sleep=clock.sleep)
    with pytest.raises(Unreachable) as caught:
        await retry(attempt, what="the thing at x", check="that it runs", transient=refused)

    assert clock.waits == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_DELAY_S, MAX_DELAY_S, 9.0]  # the last one: what was left
    assert len(tries) == 9 and clock.t == 100.0
    assert str(caught.value) == ("cannot reach the thing at x: connection refused; tried 9 times in 100.0 s "
                                 "(STARTUP_RETRY_S=100); check that it runs")


async def test_retry_returns_the_first_success_and_raises_an_error_it_is_not_told_to_wait_out():
    clock, results = Monotonic(), iter([ConnectionRefusedError(), "connected"])

    async def attempt() -> str:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    retry = Retry(60.0, Stop(), clock=clock, sleep=clock.sleep)
    assert await retry(attempt, what="x", check="y", transient=refused) == "connected"
    assert clock.waits == [1.0]

    async def wrong() -> None:
        raise PermissionError("no")

    with pytest.raises(PermissionError):
        await retry(wrong, what="x", check="y", transient=refused)


async def test_a_stop_request_ends_the_waiting_and_a_zero_budget_tries_once():
    stop, started, hanging = Stop(), asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        await hanging.wait()

    waiting = asyncio.create_task(Retry(60.0, stop)(forever, what="x", check="y", transient=refused))
    await asyncio.wait_for(started.wait(), WAIT)
    stop.requested.set()
    with pytest.raises(StopRequested):
        await asyncio.wait_for(waiting, WAIT)

    clock = Monotonic()

    async def down() -> None:
        raise ConnectionRefusedError

    with pytest.raises(Unreachable, match=r"tried 1 time in 0\.0 s"):
        await Retry(0.0, Stop(), clock=clock, sleep=clock.sleep)(down, what="x", check="y", transient=refused)
    assert clock.waits == []


async def test_a_database_a_newer_bot_migrated_stops_the_start_with_one_line(tmp_path: Path) -> None:
    from sqlalchemy import text

    from bot.app import migrate_or_explain
    from bot.errors import SettingsError
    from storage import create_engine, migrate
    from tests.bot.conftest import settings_for

    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await migrate(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        with pytest.raises(SettingsError) as raised:
            await migrate_or_explain(engine, settings_for(url))
    finally:
        await engine.dispose()
    [line] = raised.value.lines
    assert line.startswith(f"DATABASE_URL={url}: the database's schema is at revision 0099, newer than this code's")
    assert line.endswith("Run that version again, or restore the backup taken before the upgrade (README, 'Back up')")


async def test_a_second_bot_on_a_database_another_bot_holds_stops_with_one_line_and_exit_2(tmp_path: Path) -> None:
    from storage import create_engine, held_alone, migrate

    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await migrate(url)
    engine = create_engine(url)
    try:
        async with held_alone(engine):  # the first bot, running
            result = await asyncio.to_thread(run_bot, tmp_path, env_for(tmp_path, DATABASE_URL=url))
        async with held_alone(engine):  # free again once it stopped
            pass
    finally:
        await engine.dispose()

    assert result.returncode == 2
    [line] = errors(said(result))  # logged: the settings were read, logging has started
    assert line.split(" ERROR   bot: ", 1)[1].startswith(
        f"DATABASE_URL={url}: another process (pid {os.getpid()}) holds this database as its bot's "
        f"({tmp_path / 'bot.db.lock'} is locked). Two bots on one database would each run the other's queued jobs")
    assert not any("pipeline loaded" in line for line in said(result))
