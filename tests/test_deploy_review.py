"""deploy/ as an operator meets it over months: what the GPU code needs at run time is in the image, the systemd unit
finds the GPUs after a reboot, `docker run` reaps as compose does, and the container health check asks the bot
directly and tells a stuck bot from a missing one."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys

import yaml

from bot.web.health import PROBE_TIMEOUT_S
from tests.net import free_port
from tests.scripts import load_script
from tests.test_deploy import DEPLOY, StubClient, bot_health, dockerfile_instructions


def apt_installed() -> set[str]:
    """The packages the Dockerfile's `apt-get install` lines name."""
    packages: set[str] = set()
    for instruction, arguments in dockerfile_instructions():
        if instruction == "RUN":
            for command in re.findall(r"apt-get install ([^&;]*)", arguments):
                packages |= {word for word in shlex.split(command) if not word.startswith("-")}
    return packages


def test_the_image_has_what_triton_compiles_its_launcher_with_on_the_gpu() -> None:
    # Triton builds a C file including Python.h with `cc` the first time any Triton kernel runs (torch.compile's and
    # t2v.kernels'); the CUDA runtime base image has no compiler and Ubuntu's python3 no headers
    assert {"gcc", "libc6-dev", "python3-dev"} <= apt_installed()


def test_the_unit_makes_the_gpu_device_nodes_as_root_since_its_sandbox_stops_nvidia_modprobe() -> None:
    unit = (DEPLOY / "videobot.service").read_text()
    assert re.search(r"^NoNewPrivileges=yes$", unit, re.MULTILINE)  # the setuid nvidia-modprobe cannot run as root
    before = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStartPre=")]
    commands = {shlex.split(line.lstrip("-+"))[0].rsplit("/", 1)[-1]: line for line in before}
    # root ("+") for the nodes of every GPU and the uvm module; "-": a host without NVIDIA's tools still starts
    assert commands["nvidia-smi"].startswith(("-+", "+-"))
    assert commands["nvidia-modprobe"].startswith(("-+", "+-")) and " -u" in commands["nvidia-modprobe"]


def test_the_health_check_outwaits_the_bots_database_probe_within_dockers_timeout() -> None:
    # at 5 s, equal to the probe's, a stuck database was reported as "nothing answers ... is the bot running?"
    check = load_script(DEPLOY / "healthcheck.py", "videobot_healthcheck_timeouts")
    docker = float(re.search(r"--timeout=(\d+)s", (DEPLOY / "Dockerfile").read_text())[1])
    compose = float(yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["bot"]["healthcheck"]["timeout"]
                    .removesuffix("s"))
    assert PROBE_TIMEOUT_S + 1 <= check.TIMEOUT_S <= min(docker, compose) - 1


async def test_a_bot_that_accepts_but_never_answers_is_called_stuck_not_absent(monkeypatch, capsys) -> None:
    check = load_script(DEPLOY / "healthcheck.py", "videobot_healthcheck_stuck")
    monkeypatch.setattr(check, "TIMEOUT_S", 0.2)
    released = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await released.wait()  # reads nothing, answers nothing: a blocked event loop, from outside
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("HEALTH_ENABLED", "HEALTH_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEALTH_PORT", str(port))
    try:
        assert await asyncio.to_thread(check.main) == 1
    finally:
        released.set()
        server.close()
        await server.wait_closed()
    assert capsys.readouterr().err == (f"unhealthy: http://127.0.0.1:{port}/healthz did not answer within 0.2 s: the "
                                       "bot is running but stuck or overloaded\n")


def test_every_docker_run_the_files_give_has_the_init_compose_has() -> None:
    # compose's `init: true` reaps what the bot's children (a local Ray's workers, the compiler's) leave; a `docker run`
    # without --init makes the bot PID 1, which never reaps them
    assert yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["bot"]["init"] is True
    for path in (DEPLOY / "Dockerfile", DEPLOY.parent / "README.md"):
        runs = re.findall(r"docker run -d [^\n]*", path.read_text())  # the commands, not mentions of a flag
        assert runs and all(" --init " in run for run in runs), path


async def test_the_health_check_asks_the_bot_directly_whatever_proxy_the_environment_names() -> None:
    # Docker hands its client's configured proxies to every container as http_proxy/HTTP_PROXY; urllib follows them.
    # A process of its own: urllib keeps the first opener it builds, with the proxies of that moment.
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    env = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    env |= {"http_proxy": dead_proxy, "HTTP_PROXY": dead_proxy, "HEALTH_HOST": "127.0.0.1"}
    async with bot_health(StubClient()) as port:
        process = await asyncio.create_subprocess_exec(sys.executable, str(DEPLOY / "healthcheck.py"),
                                                       env={**env, "HEALTH_PORT": str(port)},
                                                       stderr=asyncio.subprocess.PIPE)
        _, err = await process.communicate()
    assert (process.returncode, err.decode()) == (0, "")
