"""`python -m t2v generate` given what a stranger types in a first hour: a prompt from a terminal that is not UTF-8,
the prompt again as the negative prompt, a LoRA that only the loaded model can refuse. Each is one line naming
the value, before any work where it can be known then."""

import pytest

from tests.t2v.helpers import refused

LATIN1_CAFE = "caf\udce9 panda"  # `café panda` from an ISO-8859-1 terminal, as Python decodes argv as UTF-8


@pytest.mark.parametrize(("argv", "line"), [
    (["generate", LATIN1_CAFE], "error: the prompt b'caf\\xe9 panda' is not UTF-8 text (byte 0xe9), so the text "
                                "encoder would read other characters than those typed; type it in UTF-8 (a terminal "
                                "set to UTF-8, e.g. LANG=C.UTF-8)"),
    (["generate", f"--prompt={LATIN1_CAFE}"], "error: the prompt b'caf\\xe9 panda' is not UTF-8 text (byte 0xe9)"),
    (["generate", "a panda", "--negative", "fl\udcf9"], "error: --negative b'fl\\xf9' is not UTF-8 text (byte 0xf9)"),
])
def test_a_prompt_typed_in_another_encoding_than_utf8_is_named_as_its_bytes_before_any_work(
        tmp_path, capsys, no_work, argv, line):
    # it rendered, the text encoder reading a stand-in token where the user typed é
    [said] = refused([*argv, "-o", str(tmp_path / "x.mp4")], capsys)
    assert said.startswith(line)
    assert not list(tmp_path.iterdir())
