"""/videomod with the odd values a stranger types, end to end: each is refused in one line that names it and what
would do, before anything is stored."""

from typing import Any

import pytest

from tests.bot.conftest import Stacks
from tests.bot.helpers import audit_actions, command, people
from tests.fakediscord import interactions, payloads

pytestmark = pytest.mark.usefixtures("logged_errors")


async def test_a_role_quota_for_a_bots_own_role_is_refused_and_sets_nothing(stacks: Stacks, scripted, monkeypatch):
    """Discord gives each bot a role of its own that no member can hold; a quota set for it was confirmed ("Default
    quota for members with @Helper bot: …") and limited nobody."""
    fake = stacks.fake
    helper = fake.make_user(name="Helper bot")  # only its id matters: the role names it
    bot_role = fake.add_role("Helper bot")
    plain_role = payloads.role_payload

    def role_payload(role: payloads.FakeRole) -> dict[str, Any]:  # the fake sends no managed roles of its own
        found = plain_role(role)
        return {**found, "managed": True, "tags": {"bot_id": str(helper.id)}} if role is bot_role else found

    monkeypatch.setattr(payloads, "role_payload", role_payload)
    monkeypatch.setattr(interactions, "role_payload", role_payload)
    async with stacks.run(lambda device: scripted) as stack:
        mod, _ = people(stack.fake)
        answer = await command(stack.fake, "videomod quota default", mod, limit=3, role=bot_role)
        defaults = await stack.moderation.repo.role_quotas(guild_id=stack.fake.guild.id)
        audited = await audit_actions(stack)

    assert answer.content == (f"The role <@&{bot_role.id}> is <@{helper.id}>'s own role: only that bot holds it, "
                              "and bots make no videos; pick a role members hold.")
    assert defaults == [] and audited == []


@pytest.mark.parametrize("duration", ["1y", "1 year", "2yrs", "6 months", "1mo", "1y2d", "1w 1month"])
async def test_a_block_of_months_or_years_is_refused_naming_the_days_that_would_do(stacks: Stacks, scripted,
                                                                                   duration):
    """Answered like any unreadable text ("is not a duration: use … 30m, 2h, 7d or 2w"), which left the moderator
    who typed 1y to guess that years are no unit and what to type instead."""
    async with stacks.run(lambda device: scripted) as stack:
        fake = stack.fake
        mod, bob = people(fake)
        answer = await command(fake, "videomod block", mod, user=bob, duration=duration)
        blocks = await stack.moderation.repo.active_blocks(guild_id=fake.guild.id)

    assert answer.content == (f"“{duration}” is not a duration: use a number and a unit such as 30m, 2h, 7d or 2w "
                              "(or combined, 1d12h), or 'permanent'; months and years are no unit, as their lengths "
                              "vary: 30d is a month, 365d a year.")
    assert blocks == []
