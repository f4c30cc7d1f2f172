"""Odd values a first-time operator types into `.env`: each refused in one line naming it, or read as meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.env_file import malformed_lines
from bot.errors import SettingsError
from bot.settings import DTYPE_SHORT, DTYPES, EXECUTORS, LOG_LEVELS, OPTIMIZE, QUOTA_PERIODS, load_settings

VALID = {"DISCORD_TOKEN": "a.token-of.a-bot", "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}


def problems(env: dict[str, str]) -> list[str]:
    """The lines of the SettingsError that loading `env` (and no .env) raises."""
    with pytest.raises(SettingsError) as caught:
        load_settings({**VALID, **env}, env_file=None)
    return caught.value.lines


def test_a_setting_a_later_line_of_env_sets_again_to_another_value_is_one_line_naming_the_lines(tmp_path: Path):
    env = tmp_path / ".env"  # the operator's values on top of a copied .env.example, whose own lines come later
    env.write_text("DISCORD_TOKEN=a-token\nALLOWED_GUILD_IDS=123456789012345678\nlog_level=DEBUG\n\n"
                   "# --- .env.example ---\nDISCORD_TOKEN=\nALLOWED_GUILD_IDS=\nLOG_LEVEL=INFO\n")

    assert malformed_lines(str(env)) == [
        f"{env} sets DISCORD_TOKEN on lines 1 and 6 to different values: the bot would read only the last, which is "
        "empty (unset: the default); keep the one you mean and delete the others",
        f"{env} sets ALLOWED_GUILD_IDS on lines 2 and 7 to different values: the bot would read only the last, which "
        "is empty (unset: the default); keep the one you mean and delete the others",
        f"{env} sets LOG_LEVEL on lines 3 and 8 to different values: the bot would read only the last; keep the one "
        "you mean and delete the others"]
    assert not any("a-token" in line for line in malformed_lines(str(env)))  # a value may be a secret


def test_a_setting_repeated_with_its_value_or_filled_in_below_an_empty_line_is_no_conflict(tmp_path: Path):
    env = tmp_path / ".env"
    env.write_text('DISCORD_GUILD_ID=\nQUOTA_DEFAULT=5\nquota_default="5"\nDISCORD_GUILD_ID=123456789012345678\n'
                   "NOT_A_SETTING=1\nNOT_A_SETTING=2\n")

    assert malformed_lines(str(env)) == []


@pytest.mark.parametrize(("name", "value", "bare"), [
    ("MEDIA_DIR", "“/srv/media”", "/srv/media"),  # pasted from a document: made a folder named “media” at start
    ("T2V_COMPILE_CACHE", "‘/srv/cache’", "/srv/cache"),
    ("STYLES_FILE", "«styles.toml»", "styles.toml"),
])
def test_a_path_in_typographic_quotes_is_refused_as_one_in_straight_quotes_is(name: str, value: str, bare: str):
    assert problems({name: value}) == [
        f"{name}={value} is wrapped in quotes, which would be part of the path: remove them ({name}={bare}; "
        f"{value[0]} is a typographic quote, which no .env reader removes)"]


def test_a_database_url_or_a_token_in_typographic_quotes_is_refused_without_showing_a_secret():
    assert problems({"DATABASE_URL": "“postgresql://bot:secret@db/videobot”"}) == [
        "DATABASE_URL=“postgresql://bot:***@db/videobot” is wrapped in quotes: remove them (DATABASE_URL="
        "postgresql://bot:***@db/videobot; “ is a typographic quote, which no .env reader removes)"]
    assert problems({"DISCORD_TOKEN": "“a.token-of.a-bot”"}) == [
        "DISCORD_TOKEN is wrapped in quotes: set it to the token alone (“ is a typographic quote, which no .env reader "
        "removes)"]


def test_an_apostrophe_inside_a_path_is_part_of_it():
    assert load_settings({**VALID, "MEDIA_DIR": "/srv/Bob’s videos"}, env_file=None).media_dir == Path(
        "/srv/Bob’s videos")


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///.", "sqlite+aiosqlite:///./", "sqlite:///."])
def test_a_sqlite_database_url_naming_the_working_folder_is_one_line_not_a_traceback(url: str, tmp_path: Path,
                                                                                     monkeypatch: pytest.MonkeyPatch):
    from bot.startup import database_file, database_file_problem

    monkeypatch.chdir(tmp_path)  # the database's folder check (its '~') raised IndexError: Path('.') has no parts
    settings = load_settings({**VALID, "DATABASE_URL": url}, env_file=None)

    assert database_file_problem(settings, database_file(settings)) == (
        f"DATABASE_URL={url}: {tmp_path} is a folder; name the database file in it")


@pytest.mark.parametrize("name", ["T2V_MODEL", "UPSCALE_MODEL", "MEDIA_DIR", "T2V_COMPILE_CACHE"])
def test_a_path_with_a_name_longer_than_file_systems_take_is_one_line_not_a_traceback(name: str, tmp_path: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch):
    from bot.startup import check_environment

    monkeypatch.chdir(tmp_path)  # each stopped `python -m bot` with OSError "File name too long"
    long = "videos-" + "x" * 300
    settings = load_settings({**VALID, "T2V_DEVICE": "cpu", "T2V_OPTIMIZE": "on", "HEALTH_ENABLED": "0", name: long},
                             env_file=None)
    with pytest.raises(SettingsError) as caught:
        check_environment(settings)

    [line] = caught.value.lines
    folder = name in ("MEDIA_DIR", "T2V_COMPILE_CACHE")  # bot.startup's check, or t2v.preflight's: 40 characters,
    assert line.startswith(f"{name}={long[:39]}…: " if folder else f"{name} {long[:39]}…: ")  # "…" included
    assert "the name videos-xxxxxxxxxxxxx… is 307 bytes long; file systems take 255 at most" in line



@pytest.mark.parametrize(("name", "value", "said"), [
    ("MEDIA_DIR", "med\tia", "MEDIA_DIR='med\\tia' holds the control character '\\t'"),
    ("STYLES_FILE", "styles\x00.toml", "STYLES_FILE='styles\\x00.toml' holds the control character '\\x00'"),
])
def test_a_path_holding_a_control_character_is_refused_naming_it(name: str, value: str, said: str):
    """A quoted .env value's escaped \\t made a folder with a tab in its name; a NUL stopped the start with a
    traceback (open() refuses one)."""
    assert problems({name: value}) == [f"{said}, which no file name should: remove it"]


@pytest.mark.parametrize(("value", "read"), [("cpu,", "cpu"), (" cuda:0 , cuda:1 ,", "cuda:0,cuda:1"),
                                             ("cuda:0,,cuda:1", "cuda:0,cuda:1")])
def test_a_device_list_takes_a_trailing_comma_and_spaces_as_the_id_lists_do(value: str, read: str):
    assert load_settings({**VALID, "T2V_DEVICE": value}, env_file=None).t2v_device == read
    assert load_settings({**VALID, "ALLOWED_GUILD_IDS": "123456789012345678,"}, env_file=None).allowed_guild_ids == (
        123456789012345678,)


def test_a_device_list_of_commas_alone_is_refused_naming_it():
    assert problems({"T2V_DEVICE": ","}) == ["T2V_DEVICE=, is not cuda, cuda:N, cpu or a comma-separated list of them"]


@pytest.mark.parametrize(("name", "value", "line"), [
    ("QUOTA_PERIOD", "daily", "QUOTA_PERIOD=daily is not one of hour, day, week, month; did you mean day?"),
    ("QUOTA_PERIOD", "Monthly", "QUOTA_PERIOD=Monthly is not one of hour, day, week, month; did you mean month?"),
    ("T2V_DTYPE", "half", "T2V_DTYPE=half is not one of auto, float32, float16, bfloat16, fp8; did you mean float16?"),
    ("T2V_DTYPE", "bf61", "T2V_DTYPE=bf61 is not one of auto, float32, float16, bfloat16, fp8; did you mean "
                          "bfloat16?"),
    ("T2V_EXECUTOR", "Locale", "T2V_EXECUTOR=Locale is not one of local, ray; did you mean local?"),
    ("T2V_OPTIMIZE", "yes", "T2V_OPTIMIZE=yes is not one of auto, on, off; did you mean on?"),
    ("T2V_OPTIMIZE", "false", "T2V_OPTIMIZE=false is not one of auto, on, off; did you mean off?"),
    ("LOG_LEVEL", "debgu", "LOG_LEVEL=debgu is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL; did you mean DEBUG?"),
    ("GALLERY_FRONT_PAGE", "server", "GALLERY_FRONT_PAGE=server is not all, servers or a server id (a whole number "
                                     "such as 123456789012345678); did you mean servers?"),
])
def test_a_near_miss_of_a_fixed_value_is_named_with_the_accepted_ones_and_the_closest(name: str, value: str,
                                                                                       line: str):
    assert problems({name: value}) == [line]


@pytest.mark.parametrize(("name", "words"), [("T2V_DTYPE", DTYPES), ("T2V_OPTIMIZE", OPTIMIZE),
                                             ("T2V_EXECUTOR", EXECUTORS), ("QUOTA_PERIOD", QUOTA_PERIODS),
                                             ("LOG_LEVEL", LOG_LEVELS)])
def test_each_word_of_a_fixed_value_reads_as_itself_in_any_case_and_with_spaces_around(name: str, words):
    for word in words:
        for typed in (word.upper(), f" {word.lower()} ", word.title()):
            assert getattr(load_settings({**VALID, name: typed}, env_file=None), name.lower()) == word


@pytest.mark.parametrize(("short", "dtype"), [*DTYPE_SHORT.items(), ("BF16", "bfloat16")])
def test_a_dtype_s_short_name_reads_as_the_dtype_it_stands_for(short: str, dtype: str):
    assert load_settings({**VALID, "T2V_DTYPE": short}, env_file=None).t2v_dtype == dtype


@pytest.mark.parametrize(("name", "value"), [("T2V_DTYPE", "fp4"), ("T2V_EXECUTOR", "slurm"), ("QUOTA_PERIOD", "d")])
def test_a_value_near_no_accepted_one_gets_no_guess(name: str, value: str):
    [line] = problems({name: value})
    assert line.startswith(f"{name}={value} is not one of ") and "did you mean" not in line


@pytest.mark.parametrize("name", ["LOG_LEVEL", "DISCORD_GUILD_ID", "QUOTA_DEFAULT", "MEDIA_DIR", "GALLERY_ENABLED",
                                  "ALLOWED_GUILD_IDS", "T2V_DEVICE", "GALLERY_HOST"])
@pytest.mark.parametrize("value", [" ", "\t "])
def test_a_value_of_spaces_alone_is_refused_showing_them_and_how_to_leave_it_unset(name: str, value: str):
    """LOG_LEVEL=' ' in .env was refused as "LOG_LEVEL=  is not one of ...", the spaces unseen, and T2V_MODEL=' '
    was told to "remove them (T2V_MODEL=)", which then stopped the start as missing."""
    assert problems({name: value}) == [
        f"{name}={value!r} is only spaces: leave it empty ({name}=) for the default, or give a value"]


def test_a_required_setting_of_spaces_alone_is_refused_saying_what_to_set_it_to():
    [line] = problems({"T2V_MODEL": "  "})
    assert line.startswith("T2V_MODEL='  ' is only spaces: set it to the folder of your weights")


@pytest.mark.parametrize(("name", "given", "example"), [
    ("GALLERY_PUBLIC_URL", "https://", "https://videos.example.org"),
    ("GALLERY_PUBLIC_URL", "http:///", "https://videos.example.org"),
    ("DISCORD_API_BASE", "https://:8443/api/v10", "https://discord-proxy.internal/api/v10"),
    ("DISCORD_GATEWAY_URL", "wss://", "wss://discord-proxy.internal/gateway"),
])
def test_an_address_without_a_host_is_named_as_given_and_said_to_have_no_host(name: str, given: str, example: str):
    # "GALLERY_PUBLIC_URL=https: is not a URL starting with https://": the value cut short, and the reason wrong
    with pytest.raises(SettingsError) as caught:
        load_settings({**VALID, name: given}, env_file=None)

    assert caught.value.lines == [f"{name}={given} names no host: give the whole address, such as {example}"]


@pytest.mark.parametrize("given", ["/", "//", "discord.com/"])
def test_an_address_that_is_no_url_is_named_with_its_slashes(given: str):
    with pytest.raises(SettingsError) as caught:
        load_settings({**VALID, "DISCORD_API_BASE": given}, env_file=None)

    assert caught.value.lines == [f"DISCORD_API_BASE={given} is not a URL starting with https:// or http://, such as "
                                  "https://discord-proxy.internal/api/v10"]


def test_settings_pasted_into_env_as_one_line_are_one_line_saying_each_takes_its_own(tmp_path: Path):
    # README's "T2V_MODEL=tiny-random T2V_ALLOW_TINY=1 T2V_DEVICE=cpu", pasted as it is: T2V_MODEL was read as a folder
    # named "tiny-random T2V_ALLOW_TINY=1 T2V_DEVICE=cpu", to download with python -m t2v download
    env = tmp_path / ".env"
    env.write_text("DISCORD_TOKEN=a.token-of.a-bot\nT2V_MODEL=tiny-random T2V_ALLOW_TINY=1 T2V_DEVICE=cpu\n")

    with pytest.raises(SettingsError) as caught:
        load_settings({}, env_file=str(env))

    assert caught.value.lines == ["T2V_MODEL=tiny-random T2V_ALLOW_TINY=1 T2V_DEVICE=cpu goes on with T2V_ALLOW_TINY "
                                  "and T2V_DEVICE: each setting takes a line of its own (T2V_MODEL=..., then "
                                  "T2V_ALLOW_TINY=... on the next line)"]


@pytest.mark.parametrize(("name", "given", "shown"), [
    ("DISCORD_TOKEN", "a.token-of.a-bot LOG_LEVEL=DEBUG", "DISCORD_TOKEN (hidden)"),
    ("DATABASE_URL", "postgresql://bot:s3cret@db/videos LOG_LEVEL=DEBUG", "DATABASE_URL=postgresql://bot:***@db/videos "
                                                                          "LOG_LEVEL=DEBUG"),
])
def test_a_secret_followed_by_another_setting_is_not_shown(name: str, given: str, shown: str):
    with pytest.raises(SettingsError) as caught:
        load_settings({**VALID, name: given}, env_file=None)

    assert caught.value.lines == [f"{shown} goes on with LOG_LEVEL: each setting takes a line of its own ({name}=..., "
                                  "then LOG_LEVEL=... on the next line)"]
    assert "s3cret" not in caught.value.lines[0] and "token-of" not in caught.value.lines[0]


@pytest.mark.parametrize(("name", "given"), [("MEDIA_DIR", "/srv/a b=c"), ("DATABASE_URL", "sqlite+aiosqlite:///v.db?x=1"),
                                             ("STYLES_FILE", "/srv/styles x=1.toml")])
def test_a_value_with_an_equals_sign_that_starts_no_setting_is_kept(name: str, given: str):
    assert str(getattr(load_settings({**VALID, name: given}, env_file=None), name.lower())) == given


@pytest.mark.parametrize(("name", "given", "line"), [
    ("STATUS_EDIT_INTERVAL_S", "1e400", "STATUS_EDIT_INTERVAL_S=1e400 is outside 1..60"),  # was named "inf"
    ("SHUTDOWN_GRACE_S", "-1", "SHUTDOWN_GRACE_S=-1 is outside 0..3600"),  # was "-1.0 is outside 0.0..3600.0"
    ("MAX_STEPS", "-5.0", "MAX_STEPS=-5.0 is outside 1..150"),
    ("T2V_COMPILE_CACHE_MAX_GB", "2e6", "T2V_COMPILE_CACHE_MAX_GB=2e6 is outside 0..1000000"),
    ("UPSCALE_STRENGTH", " 0 ", "UPSCALE_STRENGTH=0 is outside 0.01..1"),
])
def test_a_number_out_of_range_is_named_as_given_with_its_range_as_written(name: str, given: str, line: str):
    with pytest.raises(SettingsError) as caught:
        load_settings({**VALID, name: given}, env_file=None)

    assert caught.value.lines == [line]
