"""/videomod operator as a stranger operator uses it, end to end on the fake Discord (and the shared list's edits
without Discord): undoing what was never there, entries that the list's own allowlist would cancel, a rule typed with
its parts in another order, audit logs of servers the bot is in, left, or never was in, and the servers list beside
ALLOWED_GUILD_IDS. Each test reads what the operator sees and what the database keeps."""

from __future__ import annotations

import pytest

from storage import GLOBAL
from tests.bot.conftest import Stacks
from tests.bot.ui.test_e2e_tenancy import command, two_servers

pytestmark = pytest.mark.usefixtures("logged_errors")


# --- caps across every server --------------------------------------------------------------------------------------


async def test_resetting_the_usage_of_someone_without_a_cap_is_refused_and_keeps_nothing(stacks: Stacks, scripted):
    w = two_servers(stacks.fake)
    async with stacks.run(lambda device: scripted, operator_user_ids=w.mallory.id) as stack:
        fake = stack.fake
        answer = await command(fake, "videomod operator quota-reset", w.mallory, w.a, user=w.bob)
        kept = await stack.moderation.repo.quota_override(w.bob.id, guild_id=GLOBAL)
        audit = await stack.moderation.repo.latest_audit(5, guild_id=GLOBAL)

    assert answer.content == (f"<@{w.bob.id}> has no cap across every server, so there is nothing to reset: each "
                              "server's moderators give a fresh allowance there with `/videomod quota reset`; set a "
                              "cap first with `/videomod operator quota-set`.")  # was "Usage reset", and nothing was
    assert kept is None and audit == []
