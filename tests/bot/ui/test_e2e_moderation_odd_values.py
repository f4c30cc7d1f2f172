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

    assert answer.content == (f"role=<@&{bot_role.id}> is <@{helper.id}>'s own role: only that bot holds it, and "
                              "bots make no videos; pick a role members hold.")
    assert defaults == [] and audited == []
