"""The reference oracle: ModelScope's own modules, loaded by file path from the installed `modelscope` wheel."""

import importlib.util
import sys
from functools import cache
from importlib.metadata import distribution
from pathlib import Path
from types import ModuleType

REFERENCE_DIR = "modelscope/models/multi_modal/video_synthesis"


@cache
def load_reference(name: str) -> ModuleType:
    """Import `unet_sd`, `autoencoder` or `diffusion` from the wheel without importing the modelscope package."""
    path = Path(distribution("modelscope").locate_file(f"{REFERENCE_DIR}/{name}.py"))
    if not path.exists():
        raise FileNotFoundError(f"reference module {path} is missing: install the dev extra (pip install -e .[dev])")
    spec = importlib.util.spec_from_file_location(f"modelscope_reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
