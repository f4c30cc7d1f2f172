"""`python -m storage` as a newcomer first types it (README "Migrate by hand"): a command line argparse refuses is one
`error:` line saying what to type, exit status 2, as every other refusal of the command is."""

from __future__ import annotations

import pytest

from storage.__main__ import main


@pytest.mark.parametrize(("args", "says"), [
    ([], "no command given; use current or migrate (python -m storage --help)"),
    (["curent"], "argument command: invalid choice: 'curent' (choose from 'current', 'migrate')"),
    (["migrate", "--to"], "argument --to: expected one argument"),
])
def test_a_command_line_argparse_refuses_is_one_error_line(capsys: pytest.CaptureFixture, args: list[str],
                                                          says: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {says}"]
