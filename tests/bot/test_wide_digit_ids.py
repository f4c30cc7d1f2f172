"""Discord ids typed in full-width digits (１２３ from a Japanese or Chinese keyboard) or another script's decimal
digits are the ids their ASCII digits write, wherever people type ids: the settings and /videomod operator audit's
server option (bot.settings.is_snowflake). Superscripts and other digit-like signs stay refused."""

from __future__ import annotations

import pytest

from bot.errors import SettingsError
from bot.settings import load_settings
from tests.bot.conftest import Stacks
from tests.bot.test_settings import VALID
from tests.bot.ui.test_e2e_tenancy import command, two_servers

WIDE = str.maketrans("0123456789", "０１２３４５６７８９")

pytestmark = pytest.mark.usefixtures("logged_errors")


def test_ids_in_full_width_or_arabic_indic_digits_are_read_as_the_ids_they_write():
    settings = load_settings({**VALID, "DISCORD_GUILD_ID": "123456789012345678".translate(WIDE),
                              "ALLOWED_GUILD_IDS": f"{'123456789012345678'.translate(WIDE)}, ٤٥",
                              "MOD_ROLE_ID": "３", "GALLERY_FRONT_PAGE": "０４２".translate(WIDE)}, env_file=None)

    assert settings.discord_guild_id == 123456789012345678
    assert settings.allowed_guild_ids == (123456789012345678, 45)
    assert (settings.mod_role_id, settings.gallery_front_page) == (3, "42")


def test_a_superscript_is_still_no_id():
    with pytest.raises(SettingsError) as error:
        load_settings({**VALID, "MOD_ROLE_ID": "12²"}, env_file=None)
    assert error.value.lines == ["MOD_ROLE_ID=12² is not a whole number: write the id alone, such as "
                                 "123456789012345678 (Discord: Developer Mode → right-click → Copy ID)"]


async def test_operator_audit_takes_a_server_id_typed_in_full_width_digits(stacks: Stacks, scripted):
    w = two_servers(stacks.fake)
    async with stacks.run(lambda device: scripted, operator_user_ids=w.mallory.id) as stack:
        fake = stack.fake
        await command(fake, "videomod block", w.mallory, w.b, user=w.bob, reason="spam in B")
        in_b = await command(fake, "videomod operator audit", w.mallory, w.a, server=str(w.b.id).translate(WIDE))

    assert in_b.content.startswith(f"**Audit log** of Server B (`{w.b.id}`), newest first\n")
    assert "spam in B" in in_b.content
