"""Each server's /video presets, without Discord: within the operator's limits, merged, reset, audited, and a stored
value the limits no longer allow is left out."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.errors import InvalidInput
from bot.moderation.gates import ServerGates
from bot.moderation.policy import DenylistEntry, PolicyGate
from bot.moderation.rules import Moderation
from bot.moderation.servers import PRESETS_KEY, PresetLimits, Presets, ServerSettings
from storage import ModerationRepository, create_engine, migrate
from tests.clocks import Clock

MOD, A, B = 900, 600, 601
LIMITS = PresetLimits(aspects=("1:1", "16:9"), max_steps=60, max_frames=24)


@pytest.fixture
async def mods(tmp_path: Path) -> AsyncIterator[ModerationRepository]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'presets.db'}")
    await migrate(engine)
    yield ModerationRepository(engine, clock=Clock())
    await engine.dispose()


@pytest.fixture
def gates() -> ServerGates:
    return ServerGates(PolicyGate([DenylistEntry("nude", "sexual")]))  # the real English detectors


@pytest.fixture
def servers(mods: ModerationRepository, gates: ServerGates) -> ServerSettings:
    return ServerSettings(Moderation(mods, default_limit=20, period="day", clock=Clock()), LIMITS, gates)


async def test_presets_are_set_merged_per_server_and_reset(servers, mods):
    await servers.set_presets(MOD, A, steps=25, sampler="dpmpp-2m")
    merged = await servers.set_presets(MOD, A, aspect="16:9", negative="  blurry,   low quality ")

    assert merged == Presets(aspect="16:9", steps=25, sampler="dpmpp-2m", negative="blurry, low quality")
    assert await servers.presets(B) == Presets() and await servers.presets(None) == Presets()
    assert await servers.reset_presets(MOD, A) is True and await servers.presets(A) == Presets()
    assert await servers.reset_presets(MOD, A) is False
    audit = await mods.latest_audit(guild_id=A)
    assert [(row.action, row.details) for row in reversed(audit)] == [
        ("defaults.set", {"steps": 25, "sampler": "dpmpp-2m"}),
        ("defaults.set", {"aspect": "16:9", "negative": "blurry, low quality"}),
        ("defaults.reset", {}),
    ]


@pytest.mark.parametrize(("values", "says"), [
    ({"steps": 61}, "Steps must be at most 60 on this bot; you asked for 61."),
    ({"frames": 30}, "Frames must be at most 24 on this bot; you asked for 30."),
    ({"steps": 0}, "Steps must be 1–150; you asked for 0."),
    ({"guidance": 31.0}, "Guidance must be 1.0–30.0; you asked for 31.0."),
    ({"sampler": "euler"}, "The sampler must be one of ddim, dpmpp-2m; you asked for euler."),
    ({"aspect": "2:1"}, "The aspect must be one of 1:1, 16:9; you asked for 2:1."),
    ({"negative": "x" * 301}, "The negative prompt is 301 characters long; the limit is 300."),
    ({}, "Name at least one option to set: aspect, frames, steps, sampler, guidance, negative."),
    ({"negative": "   "}, "The negative prompt is blank: give the words to avoid"),
    ({"negative": "\u200b \u2060"}, "The negative prompt is blank: give the words to avoid"),  # it read "negative:  "
    ({"negative": "nude, blurry"}, "The negative prompt “nude, blurry” cannot be this server's default, as it would "
                                   "refuse every /video that takes it: "),
    ({"negative": "flou, mauvaise qualité"},
     "The negative prompt “flou, mauvaise qualité” cannot be this server's default"),
    ({"negative": "blurry \u202e evil"}, "The negative prompt “blurry evil” cannot be this server's default"),
])
async def test_values_outside_the_operators_limits_are_refused_naming_them(servers, values, says):
    with pytest.raises(InvalidInput) as refused:
        await servers.set_presets(MOD, A, **values)
    assert refused.value.message.startswith(says)
    assert await servers.presets(A) == Presets()


async def test_a_stored_preset_the_limits_no_longer_allow_is_left_out(servers, mods, caplog):
    await mods.set_setting(PRESETS_KEY, {"steps": 100, "frames": 8, "colour": "red"}, guild_id=A, by=MOD)
    assert await servers.presets(A) == Presets(frames=8)
    assert "server 600's preset steps=100 is left out: 100 steps are above this bot's limit of 60\n" in caplog.text


async def test_a_stored_preset_that_is_no_number_is_left_out_naming_the_range(servers, mods, caplog):
    await mods.set_setting(PRESETS_KEY, {"frames": "many", "steps": 20}, guild_id=A, by=MOD)
    assert await servers.presets(A) == Presets(steps=20)
    assert ("server 600's preset frames='many' is left out: frames must be a whole number from 1 to 64, not “many”\n"
            in caplog.text)


async def test_a_stored_negative_preset_above_the_length_limit_is_left_out_naming_its_length(servers, mods, caplog):
    """It raised KeyError ('negative' has no t2v range) on every read of the server's presets: each /video failed."""
    await mods.set_setting(PRESETS_KEY, {"negative": "blurry " * 50, "steps": 20}, guild_id=A, by=MOD)  # by hand
    assert await servers.presets(A) == Presets(steps=20)
    assert ("is left out: the negative prompt is 349 characters long, above the limit of 300\n") in caplog.text


async def test_a_servers_showcase_channel_is_its_own(servers):
    assert await servers.set_showcase_channel(MOD, A, 123) is True
    assert (await servers.showcase_channel(A), await servers.showcase_channel(B)) == (123, None)
    assert await servers.set_showcase_channel(MOD, A, None) is True
    assert await servers.showcase_channel(A) is None


async def test_a_default_style_is_one_the_workers_loaded_and_a_gone_one_is_left_out(mods, caplog):
    moderation = Moderation(mods, default_limit=20, period="day", clock=Clock())
    servers = ServerSettings(moderation, PresetLimits(("1:1",), 60, 24, styles=("claymation", "watercolor")))
    await servers.set_presets(MOD, A, steps=25)
    assert await servers.set_default_style(MOD, A, "watercolor") == Presets(steps=25, style="watercolor")
    with pytest.raises(InvalidInput) as caught:
        await servers.set_default_style(MOD, A, "vaporwave")
    assert caught.value.message == "There is no style vaporwave; the styles are: claymation, watercolor."
    assert await servers.set_default_style(MOD, A, None) == Presets(steps=25)  # the other presets stay

    await servers.set_default_style(MOD, A, "claymation")
    restarted = ServerSettings(moderation, PresetLimits(("1:1",), 60, 24, styles=("watercolor",)))  # claymation gone
    assert await restarted.presets(A) == Presets(steps=25)
    assert ("server 600's preset style='claymation' is left out: this bot has no style claymation (its styles: "
            "watercolor)\n") in caplog.text


async def test_a_negative_preset_the_servers_gate_refuses_later_is_left_out_with_one_log_line(servers, gates, mods,
                                                                                           caplog):
    await servers.set_presets(MOD, A, steps=25, negative="blurry, melting clocks")
    gates.replace_server(A, [DenylistEntry("melting clocks", "violence")])  # a moderator's later denylist edit
    first, second = await servers.presets(A), await servers.presets(A)

    assert first == second == Presets(steps=25)  # members' /video would otherwise be refused for text they never typed
    assert [record.getMessage() for record in caplog.records if "left out" in record.getMessage()] == [
        "server 600's negative prompt preset 'blurry, melting clocks' is left out: the server's gate refuses it"]
    await servers.set_presets(MOD, A, frames=16)  # another option changed meanwhile keeps the negative stored
    await servers.set_default_style(MOD, A, None)
    gates.replace_server(A, [])
    assert await servers.presets(A) == Presets(steps=25, frames=16, negative="blurry, melting clocks")  # back
    assert (await mods.setting(PRESETS_KEY, guild_id=A))["negative"] == "blurry, melting clocks"
