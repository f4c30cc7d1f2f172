"""Which styles a server offers, without Discord: the bot's less those its moderators turned off, per server,
audited, kept across a restart; an unknown or turned-off style is refused naming what there is."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.errors import InvalidInput, Refused
from bot.moderation.rules import Moderation
from bot.moderation.styles import ServerStyles
from storage import ModerationRepository, create_engine, migrate
from tests.clocks import Clock

MOD, A, B = 900, 600, 601
OFFERED = {"claymation": "Clay figures", "watercolor": "Soft washes", "anime": "Cel shading"}


@pytest.fixture
async def moderation(tmp_path: Path) -> AsyncIterator[Moderation]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'styles.db'}")
    await migrate(engine)
    clock = Clock()
    yield Moderation(ModerationRepository(engine, clock=clock), default_limit=20, period="day", clock=clock)
    await engine.dispose()


def offering(moderation: Moderation | None) -> ServerStyles:
    styles = ServerStyles(moderation)
    styles.offer(OFFERED)
    return styles


async def refusal(styles: ServerStyles, guild_id: int | None, style: str) -> str:
    with pytest.raises(Refused) as caught:
        await styles.check(guild_id, style)
    assert (caught.value.reason, caught.value.logged) == ("invalid", "invalid:style")
    return caught.value.message


async def test_a_style_turned_off_in_one_server_stays_on_in_others_and_after_a_restart(moderation):
    styles = offering(moderation)
    assert await styles.turn(MOD, A, "watercolor", on=False) is True
    assert await styles.turn(MOD, A, "watercolor", on=False) is False  # already off: nothing changes

    assert await styles.available(A) == ["claymation", "anime"]
    assert await styles.available(B) == await styles.available(None) == list(OFFERED)
    assert await refusal(styles, A, "watercolor") == ("The style watercolor is turned off in this server. Styles "
                                                      "here: claymation, anime.")
    await styles.check(B, "watercolor")
    assert await offering(moderation).available(A) == ["claymation", "anime"]  # read back from the database

    assert await styles.turn(MOD, A, "watercolor", on=True) is True and await styles.available(A) == list(OFFERED)
    audit = await moderation.repo.latest_audit(guild_id=A)
    assert [(row.action, row.target) for row in reversed(audit)] == [("style.off", "style:watercolor"),
                                                                     ("style.on", "style:watercolor")]


async def test_unknown_styles_are_refused_naming_the_styles_there_are(moderation):
    styles = offering(moderation)
    assert await refusal(styles, A, "vapor*wave") == ("There is no style vapor\\*wave. Styles here: claymation, "
                                                      "watercolor, anime.")
    with pytest.raises(InvalidInput) as caught:
        await styles.turn(MOD, A, "sepia", on=False)
    assert caught.value.message == "There is no style sepia; the styles are: claymation, watercolor, anime."
    for name in OFFERED:
        await styles.turn(MOD, A, name, on=False)
    assert await refusal(styles, A, "anime") == "The style anime is turned off in this server. This server offers " \
                                                 "no styles."
    await styles.check(A, None)  # no style: always allowed


async def test_without_styles_or_moderation_every_style_is_unknown_or_on_everywhere():
    assert await refusal(ServerStyles(None), A, "claymation") == ("There is no style claymation. This server offers "
                                                                   "no styles.")
    await offering(None).check(A, "anime")
