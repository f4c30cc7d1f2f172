"""Sizes as every message writes them: t2v.sizes, the one home of a byte count's and a frame size's text."""

import subprocess
import sys

from t2v.sizes import bytes_text, frame_text
from tests.test_architecture import HEAVY, ROOT


def test_a_byte_count_reads_as_the_hub_writes_sizes():
    assert [bytes_text(n) for n in (77, 1000, 12_345_678, 40 * 10**6, 3_400_000_000, 2**30)] == [
        "77 bytes", "1,000 bytes", "12.3 MB", "40.0 MB", "3.4 GB", "1.1 GB"]


def test_a_frame_size_is_width_times_height():
    assert [frame_text(256, 256), frame_text(576, 320)] == ["256×256", "576×320"]


def test_the_bot_may_import_it_without_loading_torch():
    code = f"import sys, t2v.sizes\nheavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\nassert not heavy, heavy\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
