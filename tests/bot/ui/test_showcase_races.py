"""The showcase when presses and decisions cross: two ⭐ votes at once, and nominations and votes met in odd orders
(a job deleted, a file removed by hand, a moderator who lost the role)."""

import pytest

from tests.bot.conftest import Stacks
from tests.bot.ui.test_showcase import approved, vote_label
from tests.fakediscord import FakeChannel, FakeMessage

pytestmark = pytest.mark.usefixtures("logged_errors")


@pytest.fixture
def showcase_channel(stacks: Stacks) -> FakeChannel:
    return stacks.fake.add_channel("showcase")


def labels(post: FakeMessage) -> list[str]:
    """Every count the post's ⭐ has shown, oldest first."""
    shown = [*post.history, post.snapshot()]
    return [state["components"][0]["components"][0]["label"] for state in shown]


async def test_two_votes_at_once_end_at_the_true_count_and_it_never_goes_back(stacks: Stacks, showcase_channel):
    """Ann's count (1) was on its way when cid's (2) landed; ann's then landed last and the post read 1 vote of 2."""
    async with stacks.run(showcase_channel_id=showcase_channel.id) as stack:
        fake = stack.fake
        _, _, post = await approved(stack, showcase_channel)
        first_shown = fake.hold_next("POST /interactions/*/callback")  # ann's count, on its way
        ann = await fake.click(post, "showcase:vote:1", user=fake.make_user(name="ann"))
        await fake.wait_for(lambda: fake.requests_to(f"POST /interactions/{ann.id}/*"), what="ann's count")
        cid = await fake.click(post, "showcase:vote:1", user=fake.make_user(name="cid"))
        await cid.wait_callback()  # answered at once, whether its count is shown now or after ann's
        first_shown.set()
        await ann.wait_callback()
        await fake.wait_for(lambda: post.edits == 2, what="both counts to be shown")
        entry = await stack.bot.showcase.repo.get(1)

    assert entry.votes == 2 and vote_label(post) == "2"
    assert labels(post) == ["0", "1", "2"]
