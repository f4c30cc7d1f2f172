"""What the `.env` file and the environment hold that the settings do not read: a `.env` python-dotenv cannot read
whole (`unreadable`: the one error, before anything starts), its lines that are not NAME=value, that a later line of
the same setting overrides, or whose ${VAR} nothing sets (`malformed_lines`: errors beside the settings' own
problems), and variables that look meant for a setting (`misspelled`) or whose `.env` line the environment overrides
(`shadowed`): notes beside the problems, warnings on a good start."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

from dotenv.parser import Binding, parse_stream
from dotenv.variables import Variable, parse_variables

from bot.settings import Settings
from storage import setting_names
from storage.dotenv_file import line_of, read_env_file, taken_as_written
from t2v.errors import current_user

ALIASES = {  # names other bots and guides use that difflib does not find, and the setting each stands for here
    **setting_names.ALIASES,  # DATABASE_URL's and DISCORD_GUILD_ID's, which python -m storage names too
    **dict.fromkeys(("TOKEN", "BOT_TOKEN"), "DISCORD_TOKEN"),
    **dict.fromkeys(("GUILD_IDS", "ALLOWED_SERVERS", "SERVER_IDS"), "ALLOWED_GUILD_IDS"),
    **dict.fromkeys(("MOD_ROLE", "MOD_ROLES", "MODERATOR_ROLE", "MODERATOR_ROLE_ID"), "MOD_ROLE_ID"),
    **dict.fromkeys(("OPERATOR_IDS", "OPERATORS", "OPERATOR_ID", "OWNER_ID", "OWNER_IDS", "ADMIN_IDS"),
                    "OPERATOR_USER_IDS"),
    **dict.fromkeys(("T2V_MODEL_PATH", "T2V_MODEL_DIR", "MODEL", "MODEL_PATH", "MODEL_DIR"), "T2V_MODEL"),
    **dict.fromkeys(("DEVICE", "T2V_GPU", "T2V_GPUS"), "T2V_DEVICE"),
    **dict.fromkeys(("MEDIA_PATH", "MEDIA_FOLDER", "MEDIA_DIRECTORY", "MEDIA_ROOT"), "MEDIA_DIR"),
    **dict.fromkeys(("STYLES_PATH", "STYLES_TOML"), "STYLES_FILE"),
}
OURS = ("T2V_", "DISCORD_", "GALLERY_", "HEALTH_", "QUEUE_", "QUOTA_", "UPSCALE_", "SHOWCASE_", "HISTORY_")  # prefixes
# only the bot's settings use: a name with one is meant for a setting however far from each (T2V_GPUS, QUEUE_CAP)
NOT_SETTINGS = ("T2V_WEIGHTS",)  # our own deploy files' variables (compose.yaml's host folder of the weights)

def unreadable(env_file: str | None = ".env") -> str | None:
    """Why the `.env` file cannot be read whole, in one line: a folder, a link to nothing, unreadable, or not UTF-8
    text (None when it is readable, or absent). Nothing of it is read then, so no other setting's problem would mean
    anything."""
    if env_file is None:
        return None
    try:
        if Path(env_file).is_dir():  # pydantic-settings skips it without a word: whatever it was meant to set, is not
            return (f"{Path(env_file).absolute()} is a folder, not a file; the bot reads its settings from a file "
                    f"named {env_file} in its working directory: remove or rename the folder")
        if Path(env_file).is_symlink() and not Path(env_file).exists():  # read as absent, and "no .env" said so
            return (f"{env_file} is a link to {os.readlink(env_file)}, which is not there: point it at the settings "
                    "file, or replace it with the file")
        if Path(env_file).is_file():
            _text(env_file)
    except PermissionError:
        return (f"{env_file}: permission denied for user {current_user()}; make it readable to that user (chown, "
                "chmod 600), or delete it and set the variables in the environment")
    except OSError as error:
        return f"{env_file} cannot be read ({error.strerror})"
    except UnicodeDecodeError as error:
        return (f"{env_file} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); "
                "save it as UTF-8")
    return None


def malformed_lines(env_file: str | None = ".env") -> list[str]:
    """One line per line of a readable `.env` that is not NAME=value (python-dotenv skips those with a warning that
    names no file, and reads the rest, so the settings' own problems are found beside these), and one per setting
    that lines set to different values (`_overridden`), and one per ${VAR} in a setting that nothing sets
    (`_unset_variables`): either way its operator would think they set something the bot ignores. The lines' text is
    never shown: it may hold a secret."""
    if env_file is None or not Path(env_file).is_file():
        return []
    try:
        text = _text(env_file)
    except (OSError, UnicodeDecodeError):  # `unreadable` says why, in one line
        return []
    bindings = list(parse_stream(io.StringIO(text)))
    return [*(f"{env_file} line {line_of(binding)} is not NAME=value, so the bot would ignore it; "
              "correct it or make it a comment (#)" for binding in bindings
              if binding.error or (binding.key is not None and binding.value is None)),  # NAME alone: nothing read
            *_overridden(env_file, bindings), *_unset_variables(env_file, bindings)]


def _overridden(env_file: str, bindings: list[Binding]) -> list[str]:
    """One line per setting that the `.env` sets on several lines to different values: python-dotenv keeps the last
    and drops the others without a word, so a value written at the top of a copied .env.example was undone by the
    template's own line further down (an empty ALLOWED_GUILD_IDS= there let the bot stay in every server). An empty
    line before the last is no conflict: the later one fills it in."""
    lines: dict[str, list[Binding]] = {}  # setting -> the lines setting it, in file order (any case of the name)
    for binding in bindings:
        if binding.key is not None and binding.key.lower() in Settings.model_fields:
            lines.setdefault(binding.key.lower(), []).append(binding)
    found = []
    for name, given in lines.items():
        last = given[-1]
        undone = [binding for binding in given[:-1] if binding.value and binding.value != last.value]
        if not undone:
            continue
        numbers = [line_of(binding) for binding in (*undone, last)]
        which = ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"
        read = "only the last, which is empty (unset: the default)" if not last.value else "only the last"
        found.append(f"{env_file} sets {name.upper()} on lines {which} to different values: the bot would read {read}; "
                     "keep the one you mean and delete the others")
    return found


def _unset_variables(env_file: str, bindings: list[Binding]) -> list[str]:
    """One line per ${NAME} in a setting's value that neither an earlier line nor the environment sets (and that gives
    no default, ${NAME:-default}): python-dotenv reads it as empty without a word, so MEDIA_DIR=${DATA}/media became
    /media. A value in single quotes is taken as written (storage.dotenv_file)."""
    found, known = [], set(os.environ)
    for binding in bindings:
        if binding.key is None:
            continue
        if binding.value is not None and not taken_as_written(binding) and binding.key.lower() in Settings.model_fields:
            unset = [atom.name for atom in parse_variables(binding.value)
                     if isinstance(atom, Variable) and atom.default is None and atom.name not in known]
            if unset:
                used = f"${{{unset[0]}}}"
                found.append(f"{env_file} line {line_of(binding)}: {binding.key.upper()} uses {used}, "
                             "which neither an earlier line nor the environment sets, so it would read as empty; set "
                             f"{unset[0]}, or put the value in single quotes to keep {used} as written")
        known.add(binding.key)
    return found


def _text(env_file: str) -> str:
    return Path(env_file).read_bytes().decode("utf-8-sig")  # a byte-order mark is fine


def misspelled(env: Mapping[str, str] | None = None, env_file: str | None = ".env") -> list[str]:
    """One line for each variable of `env` (the process environment when None) or `env_file` that is not a setting
    but is a name often used for one (ALIASES: MOD_ROLE, BOT_TOKEN) or spelled almost like one (T2V_DEVICES,
    QUOTA_DEFAULTS) or starting as only settings do (OURS: T2V_GPUS, QUEUE_CAP): the bot ignores it, and its operator
    would think it set something (storage.setting_names, which python -m storage shares)."""
    file = read_env_file(env_file) if env_file is not None and Path(env_file).is_file() else {}
    return setting_names.misspelled(Settings.model_fields, dict(os.environ if env is None else env), file,
                                    str(env_file), aliases=ALIASES, prefixes=OURS, not_settings=NOT_SETTINGS)


def shadowed(env: Mapping[str, str] | None = None, env_file: str | None = ".env") -> list[str]:
    """One line for each setting that `env_file` sets and `env` (the process environment when None) sets too, to
    another value: the environment's wins without a word, so an edit of the file changes nothing (a token rotated in
    .env while the shell that starts the bot still exports the old one). An empty variable is unset, and the file's
    value is read. The values are never shown: a token or a password may be among them."""
    if env_file is None or not Path(env_file).is_file():
        return []
    environment = {name.lower(): value.strip() for name, value in (os.environ if env is None else env).items()
                   if value.strip()}
    lines = []
    for name, value in read_env_file(env_file).items():
        given = environment.get(name.lower())
        if name.lower() in Settings.model_fields and value and given is not None and given != value.strip():
            lines.append(f"{name.upper()} is set both in the environment and in {env_file}, to different values: the "
                         f"environment's is used and {env_file}'s ignored; to use {env_file}'s, unset it in the "
                         f"environment (unset {name.upper()})")
    return list(dict.fromkeys(lines))
