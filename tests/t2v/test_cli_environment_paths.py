"""`python -m t2v` with a library's path setting that the library cannot make or use as it loads (an OSError from its
import): one line naming the setting and its value, exit status 2, not torch's traceback."""

import os
import subprocess
import sys
from pathlib import Path

from t2v.cli_environment import refused_setting
from t2v.errors import current_user

ROOT = Path(__file__).resolve().parents[2]


def test_a_cache_folder_that_is_a_device_is_one_line_naming_the_setting(tmp_path):
    # was a traceback of 30 lines ending in torch/_inductor/runtime/cache_dir_utils.py: FileExistsError
    result = subprocess.run([sys.executable, "-m", "t2v", "generate", "a cat", "-o", str(tmp_path / "x.mp4")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": "/dev/null"})
    assert (result.returncode, result.stderr.splitlines()) == (2, [
        "error: python -m t2v could not start: TORCHINDUCTOR_CACHE_DIR=/dev/null cannot be used by torch "
        f"(FileExistsError: [Errno 17] File exists: '/dev/null'); name a folder user {current_user()} may create and "
        "write, or unset it"])
    assert not list(tmp_path.iterdir())


def test_a_folder_above_the_setting_that_cannot_be_made_names_the_setting():
    denied = PermissionError(13, "Permission denied", "/srv/readonly/cache")
    environ = {"TORCHINDUCTOR_CACHE_DIR": "/srv/readonly/cache/inductor/x", "HF_HOME": "/data/hf",
               "OMP_NUM_THREADS": "4"}
    assert refused_setting(denied, environ) == (
        "python -m t2v could not start: TORCHINDUCTOR_CACHE_DIR=/srv/readonly/cache/inductor/x cannot be used "
        "(PermissionError: [Errno 13] Permission denied: '/srv/readonly/cache'); name a folder user "
        f"{current_user()} may create and write, or unset it")


def test_an_os_error_on_a_path_no_setting_names_keeps_its_traceback():
    environ = {"HF_HOME": "/data/hf", "OMP_NUM_THREADS": "4", "TORCH_HOME": "torch"}
    assert refused_setting(OSError("libcudnn.so.9: cannot open shared object file"), environ) is None
    assert refused_setting(PermissionError(13, "Permission denied", "/"), {"TORCH_HOME": "/srv/torch"}) is None
    assert refused_setting(PermissionError(13, "Permission denied", os.getcwd()), environ) is None
