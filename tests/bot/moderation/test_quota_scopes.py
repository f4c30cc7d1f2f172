"""Where a quota applies: a server's own default keeps the period it was set with when the bot's changes."""

from __future__ import annotations

import pytest

from bot.moderation.rules import DEFAULT_KEY, QuotaDefault
from bot.ui.cogs import moderation_text as text
from storage import GLOBAL, RoleQuotaRecord
from tests.bot.moderation import test_quota
from tests.bot.moderation.test_quota import GUILD, MOD, NOW

pytestmark = pytest.mark.usefixtures("logged_errors")
make = test_quota.make  # the service, its database and the rules on one clock the test moves

# --- a server's own default keeps its period -------------------------------------------------------------------------


async def test_a_servers_own_default_set_without_a_period_keeps_the_period_it_was_set_with(make):
    h = await make(limit=3, period="day")
    told = await h.moderation.set_default(MOD, 5, guild_id=GUILD)  # "Default quota …: 5 videos per day."
    await h.moderation.set_default(MOD, 10, guild_id=GLOBAL, period="week")  # the operator changes the bot's
    here = await h.moderation.default_quota(GUILD)
    status = await h.quota()

    assert (told.limit, told.period, told.own_period) == (5, "day", True)
    assert (here.limit, here.period, here.source) == (5, "day", "server")  # was 5 per week, silently
    assert (status.limit, status.period) == (5, "day")
    assert (await h.quota(guild=None)).period == "week"  # the bot's own default follows the operator


async def test_a_server_period_set_once_is_kept_when_its_limit_changes_and_role_defaults_share_it(make):
    h = await make(limit=3, period="day")
    await h.moderation.set_default(MOD, 5, guild_id=GUILD, period="month")
    await h.moderation.set_default(MOD, 7, guild_id=GUILD)  # no period: the server's month stays
    await h.moderation.set_default(MOD, 9, 77, guild_id=GUILD)  # a role's default: the server's period
    await h.moderation.set_default(MOD, 1, guild_id=GLOBAL, period="hour")
    status = await h.quota(roles=(77,))

    assert (await h.moderation.default_quota(GUILD)).period == "month"
    assert (status.limit, status.period, status.source) == (9, "month", "role")


def test_quota_show_says_when_a_servers_period_is_the_bots_and_changes_with_it():
    """A server default stored before periods were kept (a limit alone), or role defaults in a server with no default
    of its own, count per the bot's period: the list says so, not just "per week"."""
    role = RoleQuotaRecord(GUILD, 77, 9, MOD, NOW)
    legacy = text.defaults(QuotaDefault(5, "week", "server"), [])
    roles = text.defaults(QuotaDefault(3, "week", "bot"), [role])
    own = text.defaults(QuotaDefault(5, "day", "server", own_period=True), [role])
    plain = text.defaults(QuotaDefault(3, "week", "bot"), [])

    assert legacy.splitlines()[0] == ("**Quota defaults** (per week, the bot's period, which changes with it, calendar "
                                      "periods in UTC)")
    assert roles.splitlines()[0] == legacy.splitlines()[0]
    assert own.splitlines()[0] == "**Quota defaults** (per day, calendar periods in UTC)"
    assert plain.splitlines()[0] == "**Quota defaults** (per week, calendar periods in UTC)"


async def test_a_server_default_stored_as_a_limit_alone_follows_the_bots_period_and_a_new_set_keeps_one(make):
    h = await make(limit=3, period="day")
    await h.moderation.repo.set_setting(DEFAULT_KEY, 5, guild_id=GUILD, by=MOD)  # as stored before 2026-12-06
    before = await h.moderation.default_quota(GUILD)
    await h.moderation.set_default(MOD, 5, guild_id=GUILD)
    await h.moderation.set_default(MOD, 5, guild_id=GLOBAL, period="week")

    assert (before.period, before.own_period) == ("day", False)
    assert (await h.moderation.default_quota(GUILD)).period == "day"
