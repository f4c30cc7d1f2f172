"""Typed bot settings from the environment and `.env`, with one clear line per problem when they are wrong."""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.discord_token import NOT_TOKENS, TOKEN_PREFIXES, TOKEN_RE, shape_problem
from bot.errors import SettingsError
from bot.paths import Written, home_unexpanded, not_expanded, path_problem
from storage import InvalidDatabaseURL, urls
from storage.dotenv_file import env_bindings, line_of, read_env_file
from storage.records import MAX_SNOWFLAKE as SNOWFLAKE_MAX
from storage.records import is_snowflake
from t2v.config import TINY_RANDOM, SamplerDefaults
from t2v.request import LIMITS

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "float16", "bfloat16", "fp8")  # fp8: opt in (t2v.kernels.fp8; GPUs of compute
# capability 8.9+, no styles): ≈ 6% faster than float16 on an H100, 30x further from float32, unknown on real videos
DTYPE_SHORT = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # as `python -m t2v --dtype` takes them
DTYPE_ALIASES = {**DTYPE_SHORT, "half": "float16", "float": "float32"}  # for "did you mean": torch's other names
EXECUTORS = ("local", "ray")  # T2V_EXECUTOR: threads in this process, or actors of a Ray cluster
GPU_RESOURCE = "GPU"  # Ray's name for a GPU (RAY_WORKER_RESOURCE's default); its names are case-sensitive
OPTIMIZE = ("auto", "on", "off")  # T2V_OPTIMIZE: t2v.fast on CUDA devices only, everywhere, or nowhere
OPTIMIZE_ALIASES = {**dict.fromkeys(("1", "true", "yes"), "on"), **dict.fromkeys(("0", "false", "no"), "off")}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "ERR": "ERROR", "INFORMATION": "INFO", "TRACE": "DEBUG"}
NEAR_MISS = 0.7  # difflib's likeness above which a value is taken for a typo of an accepted one (daily: day 0.75)
QUOTA_PERIODS = ("hour", "day", "week", "month")  # calendar periods in UTC (weeks start on Monday)
MAX_QUOTA = 10_000  # videos per period; more is a typo, not a policy
MIN_HISTORY_DAYS = 32  # the jobs log kept at least this long: the longest quota period (a month) and a day
TYPOGRAPHIC_QUOTES = "“”‘’„‚«»"  # pasted from a document or a chat: no env file reader takes them for quotes
QUOTES = "\"'`" + TYPOGRAPHIC_QUOTES
TOKEN_LIFETIME_S = 900.0  # Discord interaction tokens expire 15 minutes after the command
SHUTDOWN_GRACE_S = 60.0  # on SIGTERM, running jobs finish or stop within this; deploy/ stop timeouts (90 s) allow it
JOB_TIME_LIMIT_S = 600.0  # a job still rendering this long after it started is stopped
BATCH_MAX = 2  # same-shape jobs rendered together; on an H200 2 renders more an hour than 4 (docs/benchmarks.md)
STATUS_EDIT_INTERVAL_S = 2.0  # progress edits at most this often, and the live previews they carry (bot.gpu.previews)
COMPILE_CACHE_MAX_GB = 20.0  # T2V_COMPILE_CACHE_MAX_GB (decimal GB, as the logs write sizes): the compile cache is
# pruned to this at each worker start and
# as compiles fill it (bot.gpu.source.CacheBudget; a UNet shape's files: ≈ 140 MB on an H200, perf-notes row 48)
MAX_FRAMES = 32  # the server's default cap on /video's frames
STARTUP_RETRY_S = 60.0  # how long a start keeps trying to reach the database and Discord
DISCORD_LOGIN_TIMEOUT_S = 30.0  # one login attempt; Discord answers in well under a second
FRONT_PAGES = ("all", "servers")  # GALLERY_FRONT_PAGE: every server's videos together, a list of servers, or an id
ID_LISTS = {  # setting -> what its ids are, for the one line that says a value is wrong
    "allowed_guild_ids": "server ids",
    "operator_user_ids": "user ids",
}
IdList = Annotated[tuple[int, ...], NoDecode]  # "1, 2, 3" in the environment (NoDecode: not JSON)
_DEVICE_RE = re.compile(r"cpu|cuda(:\d+)?")
_SETTING_IN_VALUE_RE = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_]*)=")  # NAME= in a value: another setting's start
_OUR_ERRORS = "settings"  # the error type of every PydanticCustomError raised below: its text is final
# Ranges checked on top of the types; the engine's own limits come from t2v so they cannot drift apart.
RANGES: dict[str, tuple[float, float]] = {
    "queue_per_user_cap": (1, 100),
    "queue_global_cap": (1, 10_000),
    "default_steps": LIMITS["steps"],
    "default_guidance": LIMITS["guidance"],
    "default_frames": LIMITS["frames"],
    "max_steps": LIMITS["steps"],
    "max_frames": LIMITS["frames"],
    "status_edit_interval_s": (1.0, 60.0),
    "token_fallback_after_s": (1.0, TOKEN_LIFETIME_S - 10.0),  # an edit at 900 s itself would meet a dead token
    "quota_default": (0, MAX_QUOTA),
    "gallery_port": (1, 65535),
    "health_port": (1, 65535),
    "upscale_strength": (0.01, 1.0),
    "upscale_cost": (1, 100),
    "shutdown_grace_s": (0.0, 3600.0),
    "job_time_limit_s": (1.0, 86_400.0),
    "ray_workers": (0, 1024),
    "media_keep_days": (0, 3650),
    "history_keep_days": (0, 36500),
    "t2v_compile_cache_max_gb": (0.0, 1_000_000.0),
    "batch_max": (1, 16),
    "startup_retry_s": (0.0, 3600.0),
    "discord_login_timeout_s": (0.1, 600.0),
    "discord_guild_id": (1, SNOWFLAKE_MAX),  # Discord's ids are positive 64-bit numbers; 0 is no server's
    "mod_role_id": (1, SNOWFLAKE_MAX),
    "showcase_channel_id": (1, SNOWFLAKE_MAX),
}
PATHS = ("t2v_model", "upscale_model", "t2v_compile_cache", "styles_file", "media_dir")  # a file or a folder
UNITS = {"_s": "seconds", "_gb": "GB", "_days": "days"}  # a ranged setting's name ends with its unit
HOST_NAME_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")  # RFC 1123
RAY_ADDRESS_RE = re.compile(r"(ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})")  # (ray://)HOST:PORT
RAY_ADDRESS_WORDS = ("auto", "local")  # ray.init's: a cluster `ray start` began on this host; a Ray of the bot's own
ENDPOINTS = {  # setting -> (allowed URL schemes, an example)
    "discord_api_base": (("https", "http"), "https://discord-proxy.internal/api/v10"),
    "discord_gateway_url": (("wss", "ws"), "wss://discord-proxy.internal/gateway"),
    "gallery_public_url": (("https", "http"), "https://videos.example.org"),
}
CREDENTIALS_REFUSED = {  # endpoint -> why a user:password@ (or user@) in its URL cannot work
    "discord_api_base": "every request carries the bot token in its Authorization header, which leaves no room for "
                        "them (the HTTP client refuses to send both), so the bot could not log in; let the proxy "
                        "admit the bot another way (its address, a network of its own)",
    "gallery_public_url": "the links in every video page's tags would show them to each visitor",
}
STAND_INS: dict[str, Any] = {  # load_what_validates: never run on; each passes its setting's own check
    "discord_token": "not.read.stand-in",  # a bot token's three parts
    "t2v_model": "not-read",
    "t2v_allow_tiny": True}  # (its default fails its own check again: T2V_MODEL=tiny-random without it)
MISSING = {  # what to do about a required variable that is not set
    "discord_token": "DISCORD_TOKEN is missing: set it to your bot token "
                     "(Discord developer portal → Bot → Reset Token)",
    "t2v_model": "T2V_MODEL is missing: set it to the folder of your weights (a ModelScope download, a "
                 "`python -m t2v convert` export or a diffusers folder; README \"Weights\"); for tests only, "
                 f"T2V_MODEL={TINY_RANDOM} with T2V_ALLOW_TINY=1 serves random noise",
}
TINY_HINT = (f"serves random noise, for tests only: set T2V_MODEL to the folder of your weights, or T2V_ALLOW_TINY=1 "
             f"to serve {TINY_RANDOM} anyway")
_TYPE_WORDS = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "a boolean (use 1 or 0, true or false)",
    "bool_type": "a boolean (use 1 or 0, true or false)",
}


def _problem(text: str) -> PydanticCustomError:
    """A validation error whose text is shown to the operator as it is."""
    return PydanticCustomError(_OUR_ERRORS, text.replace("{", "{{").replace("}", "}}"))


def did_you_mean(typed: str, accepted: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """"; did you mean X?" when `typed` is a near miss of one of `accepted` (any case): a name others use for it
    (`aliases`), or the closest by spelling (difflib); "" when nothing is near."""
    accepted = tuple(accepted)
    names = {name.lower(): name for name in accepted}
    names.update({alias.lower(): meant for alias, meant in (aliases or {}).items()})
    close = difflib.get_close_matches(typed.strip().lower(), names, n=1, cutoff=NEAR_MISS)
    return f"; did you mean {names[close[0]]}?" if close else ""


def one_of(words: tuple[str, ...], aliases: Mapping[str, str] | None = None, *, short: Mapping[str, str] | None = None,
           upper: bool = False) -> AfterValidator:
    """The check of a setting that takes one of a few `words`, in any case (returned lower-case, or upper-case with
    `upper`; a `short` name as the word it stands for); else one line naming the value typed, the words and the
    nearest of them (a name `aliases` give it, or the closest by spelling). pydantic's Literal would say neither."""
    def check(typed: str, info: ValidationInfo) -> str:
        word = typed.strip().upper() if upper else typed.strip().lower()
        word = (short or {}).get(word, word)
        if word not in words:
            raise _problem(f"{str(info.field_name).upper()}={typed} is not one of {', '.join(words)}"
                           f"{did_you_mean(typed, words, aliases)}")
        return word
    return AfterValidator(check)


def _quoted(value: str) -> bool:
    """Whether a value starts or ends with a quote: quotes an env file kept (docker run --env-file keeps them, and
    every reader keeps typographic ones)."""
    value = value.strip()
    return bool(value) and (value[0] in QUOTES or value[-1] in QUOTES)


def _quotes_kept(value: str, straight: str = "docker run --env-file keeps quotes as they are") -> str:
    """Why the quotes of a `_quoted` value are part of it, for the line that refuses it (`straight`: for " ' `)."""
    typographic = [end for end in (value.strip()[0], value.strip()[-1]) if end in TYPOGRAPHIC_QUOTES]
    return f"{typographic[0]} is a typographic quote, which no .env reader removes" if typographic else straight


def _quotes_refused(name: str, value: str, shown: Callable[[str], str] = str, part: str = "") -> PydanticCustomError:
    """The line refusing a `_quoted` value: as typed and without its quotes (`shown`: as the line may show it, a URL's
    password hidden; `part`: what the quotes would be part of), and why they stay."""
    inner = value.strip().strip(QUOTES)
    return _problem(f"{name}={value.replace(inner, shown(inner))} is wrapped in quotes{part}: remove them "
                    f"({name}={shown(inner)}; {_quotes_kept(value)})")


def _same_address(first: str, second: str) -> bool:
    """Whether two listen hosts collide on one port: the same host, either one every address of both families (""),
    or one every address of a family (0.0.0.0, ::) and the other an address of that family. asyncio opens IPv6
    sockets IPv6-only, so :: and an IPv4 address, or 0.0.0.0 and ::1, listen side by side."""
    first, second = first.strip().lower(), second.strip().lower()
    if first == second or "" in (first, second):
        return True
    every = {"0.0.0.0": 4, "::": 6}
    return any(every.get(host) is not None and every[host] == _ip_version(other)
               for host, other in ((first, second), (second, first)))


def _ip_version(host: str) -> int | None:
    """4 or 6 for an IP address, None for a host name."""
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def fast_path_on(optimize: str, device: str) -> bool:
    """Whether workers on `device` use t2v's fast path (compiled): T2V_OPTIMIZE `on`, or `auto` on a CUDA device."""
    return optimize == "on" or (optimize == "auto" and device.startswith("cuda"))


class _ShellQuotedDotEnv(DotEnvSettingsSource):
    """pydantic-settings' `.env` source, reading the file with `read_env_file`."""

    def _read_env_file(self, file_path: Path) -> Mapping[str, str | None]:
        values = read_env_file(file_path)
        return {key if self.case_sensitive else key.lower(): value for key, value in values.items()
                if not (self.env_ignore_empty and value == "")}


class Settings(BaseSettings):
    """Everything the bot reads from its environment; field NAME is read from the variable NAME (any case)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", case_sensitive=False,
                                      env_ignore_empty=True, extra="ignore")

    discord_token: SecretStr  # never logged: repr and str show asterisks
    discord_guild_id: int | None = None  # sync commands to this guild at once (development); else globally
    allowed_guild_ids: IdList = ()  # the servers the bot stays in; it leaves any other (empty: every server)
    operator_user_ids: IdList = ()  # users who run /videomod operator (global quotas and denylist, the servers)
    discord_api_base: str | None = None  # REST base through a proxy (or a test's fake Discord); unset: Discord's
    discord_gateway_url: str | None = None  # the gateway's ws(s):// URL to match; unset: Discord's
    t2v_model: str  # ModelScope directory, `t2v convert` export, diffusers directory, or the tiny-random preset
    t2v_allow_tiny: bool = Field(False, validate_default=True)  # the tiny preset serves noise: opt in
    t2v_device: str = "cuda"  # cuda (every visible GPU) | cuda:N | cpu | a comma-separated list
    t2v_dtype: Annotated[str, one_of(DTYPES, DTYPE_ALIASES, short=DTYPE_SHORT)] = "auto"
    # t2v.fast (fused, compiled, CUDA graphs): auto (on for cuda devices) | on | off
    t2v_optimize: Annotated[str, one_of(OPTIMIZE, OPTIMIZE_ALIASES)] = "auto"
    t2v_compile_cache: Path | None = None  # compiled kernels kept across restarts; unset: beside the database
    t2v_compile_cache_max_gb: float = COMPILE_CACHE_MAX_GB  # least recently used files first; 0: no limit
    # local: a thread per device of T2V_DEVICE | ray: an actor per GPU of a Ray cluster
    t2v_executor: Annotated[str, one_of(EXECUTORS)] = "local"
    ray_address: str | None = None  # the Ray cluster to join (ray://host:10001 or host:6379); unset: a local Ray
    ray_workers: int = 0  # Ray actors to start; 0: one per unit of RAY_WORKER_RESOURCE in the cluster
    ray_worker_resource: str = "GPU"  # what each actor reserves: GPU (num_gpus=1, runs on cuda) or a custom resource
    upscale_model: str | None = None  # a second model (e.g. zeroscope_v2_XL) for ⬆ Upscale; unset: no upscaler
    upscale_strength: float = 0.7  # the fraction of the denoising steps an upscale re-runs (SDEdit strength)
    upscale_cost: int = 2  # quota units (videos) one upscale counts for
    styles_file: Path | None = None  # the TOML file of /video's styles (LoRAs; bot.gpu.styles); unset: no styles
    database_url: str = "sqlite+aiosqlite:///videobot.db"  # SQLite or PostgreSQL (storage.urls reads it)
    startup_retry_s: float = STARTUP_RETRY_S  # at start, the database and Discord are tried for this long
    discord_login_timeout_s: float = DISCORD_LOGIN_TIMEOUT_S  # one login attempt answered within this, or retried
    queue_per_user_cap: int = 3  # queued + running jobs per user
    queue_global_cap: int = 100  # queued jobs overall
    batch_max: int = BATCH_MAX  # same-shape jobs next in fair order rendered as one batch; 1: one job at a time
    default_steps: int = SamplerDefaults.steps  # ModelScope's DDIM steps
    default_guidance: float = SamplerDefaults.guidance  # ModelScope's classifier-free guidance scale
    default_frames: int | None = None  # None: the loaded model's clip length (16; zeroscope 24), at most MAX_FRAMES
    max_steps: int = Field(100, validate_default=True)  # server caps, below the engine's limits
    max_frames: int = Field(MAX_FRAMES, validate_default=True)
    status_edit_interval_s: float = STATUS_EDIT_INTERVAL_S  # progress edits (and live previews) at most this often
    token_fallback_after_s: float = 840.0  # then post in the channel instead of editing (the token dies at 900 s)
    shutdown_grace_s: float = SHUTDOWN_GRACE_S  # on SIGTERM: how long running videos may take to finish or stop
    job_time_limit_s: float = JOB_TIME_LIMIT_S  # a video still rendering this long after it started is stopped
    mod_role_id: int | None = None
    quota_default: int = 20  # videos per user per period; moderators override it per user, per role or for all
    quota_period: Annotated[str, one_of(QUOTA_PERIODS)] = "day"
    showcase_channel_id: int | None = None  # the default showcase channel of the server it is in; unset: none
    media_dir: Path = Path("media")  # delivered MP4s of public jobs, by job id, for the showcase and gallery
    media_keep_days: int = 30  # kept MP4s older than this are removed (the showcase's stay); 0: keep them forever
    history_keep_days: int = 0  # jobs-log and audit-log rows older than this are deleted; 0 (unset): keep them
    # forever, so an upgrade deletes nothing unasked (.env.example gives new installs a year)
    gallery_enabled: bool = False  # serve the web gallery from `python -m bot`
    gallery_host: str = "127.0.0.1"
    gallery_port: int = 8080
    gallery_front_page: str = "all"  # what / lists: all (every server's videos), servers (links to each), a server id
    gallery_public_url: str | None = None  # the gallery's address as visitors reach it, for shared links' previews
    health_enabled: bool = True  # serve /healthz and /metrics from `python -m bot`
    health_host: str = "127.0.0.1"  # 0.0.0.0 lets Prometheus scrape it from another host or container
    health_port: int = 9090
    log_level: Annotated[str, one_of(LOG_LEVELS, LEVEL_ALIASES, upper=True)] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' own, with `.env` read by `read_env_file` (its single-quoted values as written)."""
        return init_settings, env_settings, _shell_quoted(settings_cls, dotenv_settings), file_secret_settings

    @property
    def compile_cache(self) -> Path:
        """T2V_COMPILE_CACHE, else `compile-cache` in the SQLite database's folder (the /data volume in Docker, the
        state directory under systemd), or beside MEDIA_DIR when the database is a server."""
        if self.t2v_compile_cache is not None:
            return self.t2v_compile_cache
        database = urls.parse(self.database_url).sqlite_file
        return (database.parent if database is not None else self.media_dir.parent) / "compile-cache"

    @field_validator("discord_token")
    @classmethod
    def _token_is_plain(cls, token: SecretStr) -> SecretStr:
        """Refuse empty tokens, the 'Bot ' prefix, the portal's other values (NOT_TOKENS) and any other value not of
        a bot token's three parts (`abc`) without ever echoing the token."""
        value = token.get_secret_value().strip()
        if not value:
            raise _problem(MISSING["discord_token"].replace("is missing", "is empty"))
        if any(c.isspace() for c in value):
            first = value.split()[0]
            if first.lower() in TOKEN_PREFIXES:  # a word of our own list: shown without any of the token
                raise _problem(f"DISCORD_TOKEN starts with '{first} ': set it to the token alone, without that prefix")
            raise _problem("DISCORD_TOKEN contains spaces, which a bot token never has: set it to the token alone, "
                           "copied from the developer portal's Bot page (Reset Token)")
        if _quoted(value):
            kept = _quotes_kept(value, "docker run --env-file keeps quotes as part of the value")
            raise _problem(f"DISCORD_TOKEN is wrapped in quotes: set it to the token alone ({kept})")
        if not TOKEN_RE.fullmatch(value):
            raise _problem("DISCORD_TOKEN has characters a Discord bot token never has (it is letters, digits, '.', "
                           "'_' and '-'): copy it again from the developer portal's Bot page")
        pasted = next((what for form, what in NOT_TOKENS if form.fullmatch(value)), None)
        if pasted is not None:  # Discord would refuse it at the login, after the database was made and migrated
            raise _problem(f"DISCORD_TOKEN is {pasted}, not the bot token: copy the token from the developer portal's "
                           "Bot page (Reset Token)")
        misshapen = shape_problem(value)
        if misshapen is not None:  # `abc`, a token cut short: Discord would refuse it at the login, as above
            raise _problem(f"DISCORD_TOKEN {misshapen}, a bot token is three non-empty parts joined by dots: copy it "
                           "again from the developer portal's Bot page (Reset Token)")
        return SecretStr(value)

    @field_validator("t2v_allow_tiny")
    @classmethod
    def _tiny_needs_consent(cls, allow: bool, info: ValidationInfo) -> bool:
        """The tiny-random preset answers every prompt with noise; serve it only when asked to."""
        if info.data.get("t2v_model") == TINY_RANDOM and not allow:
            raise _problem(f"T2V_MODEL={TINY_RANDOM} {TINY_HINT}")
        return allow

    @field_validator("upscale_model")
    @classmethod
    def _upscaler_needs_consent_too(cls, model: str | None, info: ValidationInfo) -> str | None:
        """The tiny-random preset as the upscaler needs T2V_ALLOW_TINY=1 as well."""
        if model == TINY_RANDOM and not info.data.get("t2v_allow_tiny"):
            raise _problem(f"UPSCALE_MODEL={TINY_RANDOM} serves random noise; set T2V_ALLOW_TINY=1 to allow it "
                           "(tests/dev only)")
        return model

    @field_validator("t2v_device")
    @classmethod
    def _device_is_known(cls, setting: str) -> str:
        """Check the device list's form (`device_list`); whether the GPUs exist is checked when the executor starts."""
        try:
            return ",".join(device_list(setting))
        except ValueError as error:
            raise _problem(str(error)) from None

    @field_validator("t2v_executor")
    @classmethod
    def _ray_is_there(cls, kind: str) -> str:
        """`ray` (one of EXECUTORS, `one_of` checked) needs the ray package (the `ray` extra)."""
        if kind == "ray" and importlib.util.find_spec("ray") is None:
            raise _problem("T2V_EXECUTOR=ray needs the ray package: pip install -e '.[ray]'")
        return kind

    @field_validator("ray_address")
    @classmethod
    def _ray_address_joins(cls, address: str | None, info: ValidationInfo) -> str | None:
        """With T2V_EXECUTOR=ray: HOST:PORT (the head's GCS), ray://HOST:PORT (Ray Client, with its packages), auto or
        local, as ray.init takes them. Not read by the local executor (the variable may be `ray job submit`'s)."""
        if address is None or info.data.get("t2v_executor") != "ray":
            return address
        address = address.strip()
        gcs = _gcs_example(address)
        if address.lower().startswith(("http://", "https://")):
            raise _problem(f"RAY_ADDRESS={address} is the address of Ray's dashboard and job API, not of the cluster: "
                           f"give the head's GCS address, such as {gcs}")
        form = RAY_ADDRESS_RE.fullmatch(address)
        if address not in RAY_ADDRESS_WORDS and (form is None or not 0 < int(form[3]) <= 65535):
            raise _problem(f"RAY_ADDRESS={address} is not HOST:PORT (the head's GCS address, such as {gcs}), "
                           "ray://HOST:PORT, auto or local")
        if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            raise _problem(f"RAY_ADDRESS={address} joins through Ray Client, which needs its own packages: pip install "
                           f"'ray[client]' (or give the head's GCS address, such as {gcs}, from a node of the cluster)")
        return address

    @field_validator("ray_worker_resource")
    @classmethod
    def _resource_is_a_name(cls, name: str) -> str:
        """A Ray resource name: GPU (any case, as Ray names it), or a custom resource the workers were started with
        (ray start --resources)."""
        name = name.strip()
        if name.upper() == GPU_RESOURCE:
            return GPU_RESOURCE
        if not re.fullmatch(r"[A-Za-z_][\w.-]*", name) or name.upper() == "CPU":
            raise _problem(f"RAY_WORKER_RESOURCE={name!r} is not a resource name: use GPU or the name of a custom "
                           "resource given to `ray start --resources` (CPU cannot be reserved per worker)")
        return name

    @field_validator(*PATHS, mode="before")
    @classmethod
    def _path_as_written(cls, value: Any, info: ValidationInfo) -> Any:
        """A path as the bot will use it, so refused when it cannot be what was meant: wrapped in quotes (docker run
        --env-file keeps them as part of the value), else what a style's LoRA file is refused for too (bot.paths:
        spaces at its ends, a control character, a leading '~', which only shells expand)."""
        if not isinstance(value, str):
            return value
        name = info.field_name.upper()
        if _quoted(value):
            raise _quotes_refused(name, value, part=", which would be part of the path")
        problem = path_problem(value, Written(name))
        if problem is not None:
            raise _problem(problem)
        return value

    @field_validator(*ID_LISTS, mode="before")
    @classmethod
    def _ids_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """A comma-separated list of Discord ids (snowflakes: whole numbers above 0), or nothing."""
        if not isinstance(value, str):
            return value
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(map(is_snowflake, parts)):
            raise _problem(f"{info.field_name.upper()}={value} is not a comma-separated list of "
                           f"{ID_LISTS[info.field_name]}: use whole numbers such as 123456789012345678,"
                           "223456789012345678 (Discord: Developer Mode → right-click → Copy ID)")
        return tuple(int(part) for part in parts)

    @field_validator(*(field for field, (low, high) in RANGES.items() if high == SNOWFLAKE_MAX), mode="before")
    @classmethod
    def _id_digits(cls, value: Any) -> Any:
        """An id typed in another script's decimal digits (full-width １２３) is the id its ASCII digits write, as in
        the id lists (`is_snowflake`)."""
        if isinstance(value, str) and value.strip().isdecimal():
            return str(int(value.strip()))
        return value

    @field_validator("allowed_guild_ids")
    @classmethod
    def _home_is_allowed(cls, allowed: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        """DISCORD_GUILD_ID, when set with an allowlist, must be on it (the bot would leave its own server)."""
        home = info.data.get("discord_guild_id")
        if allowed and home is not None and home not in allowed:
            raise _problem(f"DISCORD_GUILD_ID={home} is not in ALLOWED_GUILD_IDS={','.join(map(str, allowed))}: "
                           "add it there, or the bot would leave the server it syncs its commands to")
        return allowed

    @field_validator("gallery_host", "health_host")
    @classmethod
    def _host_alone(cls, host: str, info: ValidationInfo) -> str:
        """A host name or an IP address to listen on: no port (that is its own setting), no scheme, no brackets."""
        host = host.strip()
        if _ip_version(host) is None and not HOST_NAME_RE.fullmatch(host):
            name = info.field_name.upper()
            raise _problem(f"{name}={host} is not a host name or an IP address: give the address alone, such as "
                           f"127.0.0.1 (this host only) or 0.0.0.0 (every address), and the port in "
                           f"{name.replace('HOST', 'PORT')}")
        return host

    @model_validator(mode="after")
    def _fp8_where_it_runs(self) -> Settings:
        """T2V_DTYPE=fp8 computes on GPUs only, and holds no style: a style is fused into the UNet's weights, which
        fp8 keeps in e4m3, too coarse to hold it (t2v.lora refuses it)."""
        if self.t2v_dtype != "fp8":
            return self
        if "cpu" in device_list(self.t2v_device):
            raise _problem(f"T2V_DTYPE=fp8 computes on GPUs with fp8 tensor cores, not on the CPU (T2V_DEVICE="
                           f"{self.t2v_device}); use T2V_DTYPE=auto there")
        if self.styles_file is not None:
            raise _problem(f"T2V_DTYPE=fp8 cannot serve the styles of STYLES_FILE={self.styles_file}: a style is "
                           "fused into the UNet's weights, which fp8 keeps in e4m3, too coarse to hold it; use "
                           "T2V_DTYPE=auto for styles, or leave STYLES_FILE unset")
        return self

    @model_validator(mode="after")
    def _web_ports_apart(self) -> Settings:
        """The web gallery and /healthz, both on, cannot listen on one port of one address."""
        if (self.gallery_enabled and self.health_enabled and self.gallery_port == self.health_port
                and _same_address(self.gallery_host, self.health_host)):
            raise _problem(f"GALLERY_PORT and HEALTH_PORT are both {self.health_port} (GALLERY_HOST="
                           f"{self.gallery_host}, HEALTH_HOST={self.health_host}): the web gallery and /healthz "
                           "cannot listen on one port; give one of them another (the defaults are 8080 and 9090)")
        return self

    @field_validator("gallery_front_page")
    @classmethod
    def _front_page_is_known(cls, page: str) -> str:
        """all, servers, or a server id (written as Discord writes it: 042 is 42, whose page the gallery's links
        then name as /)."""
        page = page.strip().lower()
        if is_snowflake(page):
            return str(int(page))
        if page not in FRONT_PAGES:
            raise _problem(f"GALLERY_FRONT_PAGE={page} is not all, servers or a server id (a whole number such as "
                           f"123456789012345678){did_you_mean(page, FRONT_PAGES)}")
        return page

    @field_validator("database_url")
    @classmethod
    def _url_is_usable(cls, url: str) -> str:
        """A URL of a database the bot can use (storage.urls says what is wrong); the password never shown."""
        url = url.strip()
        if _quoted(url):
            raise _quotes_refused("DATABASE_URL", url, urls.shown)
        try:
            read = urls.parse(url)
        except InvalidDatabaseURL as error:
            raise _problem(f"DATABASE_URL={urls.shown(url)}: {error}") from None
        if read.backend == "sqlite" and read.sqlite_file is None:
            raise _problem(f"DATABASE_URL={url} keeps the database in memory: the queue, quotas, blocks and audit log "
                           "would be lost at every restart; name a file, e.g. sqlite+aiosqlite:///videobot.db")
        found = None if read.sqlite_file is None else home_unexpanded(str(read.sqlite_file))  # the file as a path
        if found is not None:
            example = "" if found.meant is None else f", e.g. sqlite+aiosqlite:///{found.meant}"
            raise _problem(f"DATABASE_URL={url}: {not_expanded(found)}{example}")
        return url

    @field_validator(*ENDPOINTS)
    @classmethod
    def _endpoint_is_a_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        """An http(s) URL with a host for the REST base and the gallery's address (the root of its host), a ws(s) one
        for the gateway; no trailing slash."""
        if url is None:
            return None
        schemes, example = ENDPOINTS[info.field_name]
        given = url.strip()
        url = given.rstrip("/")
        parts, shown = urlsplit(url), urls.shown(given)  # as given (https:// is not "https:"); no password shown
        if parts.scheme in schemes and not parts.hostname and given.startswith(f"{parts.scheme}://"):
            raise _problem(f"{info.field_name.upper()}={shown} names no host: give the whole address, such as "
                           f"{example}")
        if parts.scheme not in schemes or not parts.hostname:
            starts = " or ".join(f"{scheme}://" for scheme in schemes)
            raise _problem(f"{info.field_name.upper()}={shown} is not a URL starting with {starts}, such as {example}")
        if parts.username is not None and info.field_name in CREDENTIALS_REFUSED:
            shown = url.replace(parts.netloc, "***@" + parts.netloc.rsplit("@", 1)[1], 1)  # user:password@ alike
            raise _problem(f"{info.field_name.upper()}={shown} holds credentials (user:password@): "
                           f"{CREDENTIALS_REFUSED[info.field_name]}; give the address alone, such as {example}")
        if info.field_name == "gallery_public_url" and (parts.path or parts.query or parts.fragment):
            raise _problem(f"GALLERY_PUBLIC_URL={url} is not the root of a host: the gallery's pages link from / of "
                           f"their host, so behind a path they would break; serve it at a host of its own, such as "
                           f"{example}, and give that")
        return url

    @field_validator(*RANGES, mode="wrap")
    @classmethod
    def _in_range(cls, given: Any, read: ValidatorFunctionWrapHandler, info: ValidationInfo) -> float | None:
        """Each ranged setting within RANGES (unset: None), named as given (1e400 is not "inf"), and the defaults
        within the server caps."""
        value = read(given)
        if value is None:
            return None
        low, high = RANGES[info.field_name]
        name = info.field_name.upper()
        if not low <= value <= high:
            shown = given.strip() if isinstance(given, str) else _plain(value)
            raise _problem(f"{name}={shown} is outside {_plain(low)}..{_plain(high)}")
        default = {"max_steps": "default_steps", "max_frames": "default_frames"}.get(info.field_name)
        if default is not None and (info.data.get(default) or low) > value:
            given = info.data[default]
            unset = " (its default)" if given == cls.model_fields[default].default else ""
            raise _problem(f"{default.upper()}={given}{unset} is above {name}={value}: set {default.upper()} to "
                           f"{value} or less, or {name} to {given} or more")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _not_blank(cls, value: Any, info: ValidationInfo) -> Any:
        """A value of spaces alone (a quoted ' ' in .env, an environment's "VAR= "): no setting takes one, and an
        empty value is how to leave one unset. Defined last, so it answers before the fields' own checks do (which
        would show the spaces as "NAME=  is not a whole number"); the token's own check says it is empty."""
        if isinstance(value, str) and value and not value.strip() and info.field_name != "discord_token":
            name = info.field_name.upper()
            if info.field_name in MISSING:  # required: no default to fall back on
                raise _problem(MISSING[info.field_name].replace(f"{name} is missing", f"{name}={value!r} is only "
                                                                                      "spaces"))
            raise _problem(f"{name}={value!r} is only spaces: leave it empty ({name}=) for the default, or give a "
                           "value")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _one_setting_a_line(cls, value: Any, info: ValidationInfo) -> Any:
        """A value that goes on with other settings ("T2V_MODEL=tiny-random T2V_ALLOW_TINY=1 T2V_DEVICE=cpu", a
        command line's settings pasted into .env as one line): it would be read as one odd value, and the others not
        at all. Defined after `_not_blank`, so it answers first; a token is never shown, only what follows it."""
        if not isinstance(value, str):
            return value
        others = [found for found in _SETTING_IN_VALUE_RE.findall(value) if found.lower() in cls.model_fields]
        if not others:
            return value
        name = info.field_name.upper()
        if info.field_name == "discord_token":
            given = f"{name} (hidden)"
        else:
            given = f"{name}={urls.shown(value) if info.field_name in (*ENDPOINTS, 'database_url') else value}"
        raise _problem(f"{given} goes on with {' and '.join(others)}: each setting takes a line of its own "
                       f"({name}=..., then {others[0]}=... on the next line)")

    @field_validator("history_keep_days")
    @classmethod
    def _history_covers_a_quota_period(cls, days: int) -> int:
        """0 (forever) or at least a month and a day: quotas count the jobs of the current period, a month at most
        (a server's moderators may choose `month` whatever QUOTA_PERIOD says)."""
        if 0 < days < MIN_HISTORY_DAYS:
            raise _problem(f"HISTORY_KEEP_DAYS={days} would forget jobs the monthly quota still counts; use 0 (keep "
                           f"forever) or {MIN_HISTORY_DAYS} or more")
        return days


class _ExplicitSettings(Settings):
    """Settings read from a given mapping (as keyword arguments) and `.env`, ignoring the process environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The mapping first, then the `.env` file; no process environment and no secrets directory."""
        return init_settings, _shell_quoted(settings_cls, dotenv_settings)

    def __repr_name__(self) -> str:
        """Show as the public class in logs and reprs."""
        return Settings.__name__


def _shell_quoted(settings_cls: type[BaseSettings], source: PydanticBaseSettingsSource) -> PydanticBaseSettingsSource:
    """pydantic-settings' `.env` source for the file it was given (`_env_file=`), as a `_ShellQuotedDotEnv`."""
    assert isinstance(source, DotEnvSettingsSource)
    return _ShellQuotedDotEnv(settings_cls, env_file=source.env_file)


def device_list(setting: str) -> list[str]:
    """A T2V_DEVICE value's devices, each once, as written canonically ("cpu", "cuda" for every GPU, "cuda:N");
    ValueError naming what is wrong. The one reading of the setting: bot.gpu.executor.devices_for expands "cuda".
    Read as the id lists are: spaces around a device and empty places (a trailing comma: cpu,) are nothing."""
    parts = [part.strip().lower() for part in setting.split(",") if part.strip()]
    if not parts or not all(_DEVICE_RE.fullmatch(part) for part in parts):
        raise ValueError(f"T2V_DEVICE={setting} is not cuda, cuda:N, cpu or a comma-separated list of them")
    parts = [f"cuda:{int(part[5:])}" if part.startswith("cuda:") else part for part in parts]  # cuda:00 is cuda:0
    twice = next((part for part in parts if parts.count(part) > 1), None)
    if twice is not None:
        raise ValueError(f"T2V_DEVICE={setting} names {twice} twice: each device gets one worker, so name it once")
    if "cuda" in parts and any(part.startswith("cuda:") for part in parts):
        raise ValueError(f"T2V_DEVICE={setting}: cuda already means every GPU; name either cuda or the cuda:N you "
                         "want")
    return parts


def load_settings(env: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Read settings from `env` (the process environment when None) and `env_file`; raise SettingsError."""
    try:
        settings = _read(env, env_file)
    except ValidationError as error:
        raise SettingsError([_error_line(problem, env, env_file) for problem in error.errors()]) from None
    log.debug("settings loaded: model %s on %s, database %s", settings.t2v_model, settings.t2v_device,
              urls.shown(settings.database_url))
    return settings


def load_what_validates(env: Mapping[str, str] | None = None,
                        env_file: str | None = ".env") -> tuple[Settings, frozenset[str]] | None:
    """After load_settings raised: the settings again, each one that was wrong or missing at its default (a stand-in
    for a required one), and the names of those; so that the checks of what the other settings name (the GPUs, the
    weights, the folders: bot.startup.check_environment, told to skip the wrong ones) answer in the same run. Never
    to run on. None when no such reading validates (a check across settings fails whatever the wrong ones are)."""
    wrong: set[str] = set()
    while True:
        stand_ins = {name: STAND_INS.get(name, Settings.model_fields[name].get_default(call_default_factory=True))
                     for name in wrong}
        try:
            return _read(env, env_file, stand_ins), frozenset(wrong)
        except ValidationError as error:
            found = {str(problem["loc"][0]) for problem in error.errors() if problem["loc"]}
            if found <= wrong:  # the defaults fail too, against a setting that validated (a check across settings)
                return None
            wrong |= found


def _read(env: Mapping[str, str] | None, env_file: str | None, given: Mapping[str, Any] | None = None) -> Settings:
    """Settings from `env` (the process environment when None) and `env_file`, `given` (field: value) over both;
    ValidationError when any is wrong."""
    if env is None:
        return Settings(_env_file=env_file, **(given or {}))  # type: ignore[call-arg]
    fields = Settings.model_fields
    values = {key.lower(): value for key, value in env.items() if key.lower() in fields and value != ""}
    return _ExplicitSettings(_env_file=env_file, **{**values, **(given or {})})  # type: ignore[call-arg]


def _missing(field: str, env: Mapping[str, str] | None, env_file: str | None) -> str:
    """The line for a required setting nothing gives a value: where it is set empty, if it is (a .env copied from
    .env.example keeps its `DISCORD_TOKEN=` line, and an empty value counts as unset), else that it is missing."""
    name = field.upper()
    line = MISSING.get(field, f"{name} is missing")
    number = _empty_line(field, env_file)
    if number is not None:
        return line.replace(f"{name} is missing", f"{name} is empty on {env_file} line {number}" if number else
                            f"{name} is empty in {env_file}")
    if any(key.lower() == field and value == "" for key, value in (os.environ if env is None else env).items()):
        return line.replace(f"{name} is missing", f"{name} is set empty in the environment")
    return line


def _empty_line(field: str, env_file: str | None) -> int | None:
    """The line of `env_file` that sets `field` to nothing (0 where it cannot be told which); None when the file does
    not set it so, or cannot be read (bot.env_file.unreadable says why)."""
    if env_file is None or not Path(env_file).is_file():
        return None
    try:
        values = read_env_file(env_file)
        sets = [binding for binding in env_bindings(env_file) if (binding.key or "").lower() == field]
    except (OSError, UnicodeDecodeError):
        return None
    if not any(key.lower() == field and value == "" for key, value in values.items()):
        return None
    return line_of(sets[-1]) if sets else 0  # the last: the one read


def _error_line(problem: Mapping[str, Any], env: Mapping[str, str] | None, env_file: str | None) -> str:
    """One operator-facing line for one pydantic error, naming the variable and the bad value (read from `env`, the
    process environment when None, and `env_file`)."""
    field = str(problem["loc"][0]) if problem["loc"] else ""
    name = field.upper()
    if problem["type"] == _OUR_ERRORS:
        return str(problem["msg"])
    if problem["type"] == "missing":
        return _missing(field, env, env_file)
    if field == "discord_token":
        return "DISCORD_TOKEN is not a valid token string"  # never echo the token itself
    words = _TYPE_WORDS.get(problem["type"])
    if words is not None:
        return f"{name}={problem['input']} is not {words}{_what_to_write(field)}"
    return f"{name}={problem.get('input')}: {problem['msg']}"


def _gcs_example(address: str) -> str:
    """The head's GCS address on the host RAY_ADDRESS names (HEAD when it names none, or an unclosed [IPv6)."""
    try:
        host = urlsplit(address if "://" in address else f"//{address}").hostname or "HEAD"
    except ValueError:  # urlsplit: "Invalid IPv6 URL"
        host = "HEAD"
    return f"[{host}]:6379" if ":" in host else f"{host}:6379"  # the port `ray start --head` listens on


def _what_to_write(field: str) -> str:
    """After "is not a number": what would be right for a ranged setting (its unit, its range, its default), or for
    a Discord id; nothing for the others (a boolean's words say it)."""
    if field not in RANGES:
        return ""
    low, high = RANGES[field]
    if high == SNOWFLAKE_MAX:
        return ": write the id alone, such as 123456789012345678 (Discord: Developer Mode → right-click → Copy ID)"
    unit = next((f"write the {word} alone, " for suffix, word in UNITS.items() if field.endswith(suffix)), "")
    default = Settings.model_fields[field].default
    example = f", such as {field.upper()}={_plain(default)}" if isinstance(default, int | float) else ""
    return f": {unit}from {_plain(low)} to {_plain(high)}{example}"


def _plain(number: float) -> str:
    """A number as an operator writes it: 3600, not 3600.0 or 3.6e+03."""
    return str(int(number)) if float(number).is_integer() else str(number)
