"""deploy/ as an operator meets it over months: what the GPU code needs at run time is in the image, the systemd unit
finds the GPUs after a reboot, and the container health check tells a slow bot from a missing one."""

from __future__ import annotations

import re
import shlex

from tests.test_deploy import DEPLOY, dockerfile_instructions


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
