"""Variables that are not settings but look meant for one (DATABSE_URL, DB_URL, T2V_DEVICES): one line each, naming
the setting it most likely stands for, since its operator would think they set something that is ignored. The one
check behind `python -m bot` (bot.env_file, against every setting) and `python -m storage` (against the two it
reads); the caller names its settings, and this module only the names other programs and guides use.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

FOREIGN = ("PYTHON", "PIP_", "CUDA", "CUDNN", "NV_", "NVIDIA_", "NCCL_", "TORCH", "PYTORCH_", "HF_", "LC_", "XDG_",
           "SSH_", "PG", "POSTGRES_", "DOCKER_", "COMPOSE_", "KUBERNETES_", "GITHUB_", "RUNNER_", "PYTEST_", "OMP_",
           "MKL_")  # prefixes of other programs' variables: never taken for a misspelled setting
ALIASES = {  # names other programs and guides use that difflib does not find, for the settings storage reads
    **dict.fromkeys(("DB_URL", "DB_PATH", "DATABASE_PATH", "SQLALCHEMY_DATABASE_URI"), "DATABASE_URL"),
    **dict.fromkeys(("GUILD_ID", "SERVER_ID", "DISCORD_SERVER_ID"), "DISCORD_GUILD_ID"),
}


def misspelled(settings: Collection[str], environment: Mapping[str, str], file: Mapping[str, str | None],
               file_name: str, *, aliases: Mapping[str, str] = ALIASES, prefixes: Collection[str] = (),
               not_settings: Collection[str] = ()) -> list[str]:
    """One line for each variable of `environment` or of `file` (the `.env` named `file_name`, as read) that is not
    one of `settings` but is a name often used for one (`aliases`: NAME -> SETTING), spelled almost like one, or
    starting as only the settings do (`prefixes`: the nearest of those with it, however far). Names far from every
    setting, other programs' (FOREIGN) and `not_settings` are left alone; an alias in the environment is named only
    while the setting it stands for is unset (TOKEN or DEVICE may be another program's). One line a name, however
    many places and cases it is set in."""
    fields = [setting.lower() for setting in settings]
    given = {name.lower() for name, value in {**environment, **file}.items() if value}
    lines: dict[str, str] = {}
    for where, names in (("the environment", environment), (file_name, file)):
        for name in filter(None, names):
            meant = _meant(name, fields, aliases, prefixes, not_settings)
            if meant is None or (where == "the environment" and name.upper() in aliases and meant in given):
                continue
            lines[name.upper()] = (f"{name} (in {where}) is not a setting the bot reads, so it is ignored; did you "
                                   f"mean {meant.upper()}?")
    return list(lines.values())


def _meant(name: str, fields: list[str], aliases: Mapping[str, str], prefixes: Collection[str],
           not_settings: Collection[str]) -> str | None:
    """The setting (lower case) that `name`, not one itself, likely stands for; None for any other variable."""
    if name.lower() in fields or name.upper().startswith(FOREIGN) or name.upper() in not_settings:
        return None
    if name.upper() in aliases:
        return aliases[name.upper()].lower()
    close = difflib.get_close_matches(name.lower(), fields, n=1, cutoff=0.85)
    if close:
        return close[0]
    prefix = next((prefix.lower() for prefix in prefixes if name.upper().startswith(prefix)), None)
    if prefix is None:
        return None
    words = set(name.lower().split("_"))  # the setting sharing the most words with it, then the closest in spelling
    return max((field for field in fields if field.startswith(prefix)),
               key=lambda field: (len(words & set(field.split("_"))),
                                  difflib.SequenceMatcher(None, name.lower(), field).ratio()))
