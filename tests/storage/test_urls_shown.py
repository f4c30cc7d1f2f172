"""storage.urls.shown on URLs with a user and no password: the scheme and the user stay, nothing is masked."""

import pytest

from storage import urls


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://videobot@db/videobot", "postgresql://videobot@db/videobot"),
    ("postgresql+asyncpg://videobot@db:5432/videobot", "postgresql+asyncpg://videobot@db:5432/videobot"),
    ("postgresql://videobot@db/videobot?password=hunter2", "postgresql://videobot@db/videobot?password=***"),
    ("postgresql://videobot:secret@db/videobot", "postgresql://videobot:***@db/videobot"),
    ("postgresql://videobot:@db/videobot", "postgresql://videobot:***@db/videobot"),
    ("videobot:hunter2@db/videobot", "videobot:***@db/videobot"),
])
def test_a_user_without_a_password_is_shown_as_written_and_a_password_is_still_masked(url, shown):
    assert urls.shown(url) == shown
