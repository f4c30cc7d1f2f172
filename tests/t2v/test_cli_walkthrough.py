"""`python -m t2v` as a newcomer types it after reading README "The CLI": what argparse's own habits would have had
them write is answered with the option they meant."""

import pytest

from t2v.cli import main


@pytest.mark.parametrize(("args", "says"), [
    (["generate", "a cat", "--neg", "blurry"], "--neg: did you mean --negative?"),
    (["generate", "a cat", "--st", "20"], "--st: did you mean --steps?"),
    (["generate", "a cat", "--gui", "7"], "--gui: did you mean --guidance?"),
    (["convert", "tiny-random", "out", "--ove"], "--ove: did you mean --overwrite?"),
    (["bench", "--cold-start"], "--cold-start: did you mean --cold-start-only?"),
])
def test_an_abbreviated_option_is_answered_with_the_one_it_begins(capsys, no_work, args, says):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: unrecognized option: {says} (see --help)"]


def test_an_abbreviation_of_two_options_is_answered_as_a_misspelling(capsys, no_work):
    with pytest.raises(SystemExit):
        main(["generate", "a cat", "--he", "64"])  # --height and --help both begin so: no one of them is meant
    assert capsys.readouterr().err.splitlines() == ["error: unrecognized option: --he: did you mean --help? "
                                                    "(see --help)"]
