"""`python -m storage migrate --to` takes a revision as an operator finds it: README says to look for the last file in
the older version's storage/migrations/versions/ (0003_showcase.py), and people drop leading zeros (3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.__main__ import main
from tests.storage.test_migrate_command import HEAD, schema


@pytest.mark.parametrize("written", ["0003_showcase.py", "storage/migrations/versions/0003_showcase.py", "3",
                                     "0003_showcase"])
def test_a_revision_written_as_its_file_or_its_number_is_that_revision(
        bot_folder: Path, capsys: pytest.CaptureFixture, written: str) -> None:
    capsys.readouterr()
    assert main(["migrate", "--to", written]) == 0
    assert capsys.readouterr().out.strip().endswith(f"downgraded from revision {HEAD} to 0003")
    assert schema(bot_folder / "videobot.db")[0] == "0003"
    assert main(["migrate", "--to", "HEAD"]) == 0
    assert schema(bot_folder / "videobot.db")[0] == HEAD


@pytest.mark.parametrize("written", ["0", "99", "-1", "showcase"])
def test_a_revision_that_is_not_shipped_is_still_refused(bot_folder: Path, capsys: pytest.CaptureFixture,
                                                         written: str) -> None:
    capsys.readouterr()
    assert main(["migrate", f"--to={written}"]) == 2
    assert capsys.readouterr().err.startswith(f"error: --to {written}: no such revision; use one of 0001, ")
    assert schema(bot_folder / "videobot.db")[0] == HEAD
