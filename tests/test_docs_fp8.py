"""What the docs tell an operator choosing fp8 agrees between them and with the bot: one speed-up figure in README.md
and .env.example, and docs/lora.md says that fp8 holds no style, as the bot's settings refuse it."""

import re

import pytest

from bot.errors import SettingsError
from bot.settings import load_settings
from tests.test_architecture import ROOT

SPEED_UP = re.compile(r"(\d+)% faster than (?:fp16|float16) on an H100")


def _one_line(path: str) -> str:
    """The file's text with its line breaks and comment marks as single spaces."""
    return " ".join(re.sub(r"^# ?", "", (ROOT / path).read_text(), flags=re.M).split())


def test_the_readme_and_the_env_example_give_fp8_the_same_speed_up():
    readme, env_example = (SPEED_UP.findall(_one_line(path)) for path in ("README.md", ".env.example"))
    assert readme and env_example and set(readme) == set(env_example), (readme, env_example)


def test_the_lora_doc_says_fp8_holds_no_style_as_the_bot_refuses_it(tmp_path):
    with pytest.raises(SettingsError, match="T2V_DTYPE=fp8 cannot serve the styles of STYLES_FILE"):
        load_settings({"DISCORD_TOKEN": "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gabcde.secret-part", "T2V_MODEL": "tiny-random",
                       "T2V_ALLOW_TINY": "1", "T2V_DTYPE": "fp8", "STYLES_FILE": str(tmp_path / "styles.toml")},
                      env_file=None)
    lora_doc = _one_line("docs/lora.md")
    assert "`--dtype fp8`" in lora_doc and "`T2V_DTYPE=fp8` with a `STYLES_FILE`" in lora_doc
