"""Bot settings: read from the environment or `.env`, and every mistake explained on its own line."""

from pathlib import Path

import pytest

from bot.env_file import misspelled
from bot.errors import SettingsError
from bot.settings import Settings, load_settings

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gabcde.secret-part-of-the-token"
VALID = {"DISCORD_TOKEN": TOKEN, "T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}


def problems(env: dict[str, str], env_file: str | None = None) -> list[str]:
    """The lines of the SettingsError that loading `env` raises."""
    with pytest.raises(SettingsError) as caught:
        load_settings(env, env_file=env_file)
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


def test_defaults_match_the_documented_contract():
    settings = load_settings(VALID, env_file=None)
    assert isinstance(settings, Settings)
    assert settings.discord_token.get_secret_value() == TOKEN
    assert (settings.t2v_model, settings.t2v_device, settings.t2v_dtype) == ("tiny-random", "cuda", "auto")
    assert (settings.queue_per_user_cap, settings.queue_global_cap) == (3, 100)
    assert (settings.default_steps, settings.default_guidance, settings.default_frames) == (50, 9.0, None)  # model's
    assert (settings.upscale_model, settings.upscale_strength, settings.upscale_cost) == (None, 0.7, 2)
    assert (settings.max_steps, settings.max_frames) == (100, 32)
    assert settings.discord_guild_id is None and settings.mod_role_id is None
    assert settings.database_url == "sqlite+aiosqlite:///videobot.db"


@pytest.mark.parametrize(("given", "means"), [("fp16", "float16"), ("BF16", "bfloat16"), (" fp32 ", "float32"),
                                               ("Float16", "float16"), ("auto", "auto")])
def test_t2v_dtype_takes_the_names_python_m_t2v_takes(given, means):
    assert load_settings({**VALID, "T2V_DTYPE": given}, env_file=None).t2v_dtype == means


def test_an_upscaler_needs_consent_for_the_tiny_model_and_a_strength_in_range():
    assert problems({"DISCORD_TOKEN": TOKEN, "T2V_MODEL": "/srv/t2v", "UPSCALE_MODEL": "tiny-random",
                     "UPSCALE_STRENGTH": "1.5", "UPSCALE_COST": "0"}) == [
        "UPSCALE_MODEL=tiny-random serves random noise; set T2V_ALLOW_TINY=1 to allow it (tests/dev only)",
        "UPSCALE_STRENGTH=1.5 is outside 0.01..1",
        "UPSCALE_COST=0 is outside 1..100",
    ]


def test_discord_endpoints_are_unset_by_default_and_must_be_urls_of_the_right_kind():
    defaults = load_settings(VALID, env_file=None)
    assert (defaults.discord_api_base, defaults.discord_gateway_url) == (None, None)  # Discord itself
    assert (defaults.shutdown_grace_s, defaults.job_time_limit_s) == (60.0, 600.0)
    proxied = load_settings({**VALID, "DISCORD_API_BASE": "https://proxy.internal/api/v10/",
                             "DISCORD_GATEWAY_URL": "wss://proxy.internal/gateway"}, env_file=None)
    assert (proxied.discord_api_base, proxied.discord_gateway_url) == ("https://proxy.internal/api/v10",
                                                                       "wss://proxy.internal/gateway")
    assert problems({**VALID, "DISCORD_API_BASE": "proxy.internal", "DISCORD_GATEWAY_URL": "https://proxy.internal",
                     "SHUTDOWN_GRACE_S": "-1", "JOB_TIME_LIMIT_S": "0"}) == [
        "DISCORD_API_BASE=proxy.internal is not a URL starting with https:// or http://, such as "
        "https://discord-proxy.internal/api/v10",
        "DISCORD_GATEWAY_URL=https://proxy.internal is not a URL starting with wss:// or ws://, such as "
        "wss://discord-proxy.internal/gateway",
        "SHUTDOWN_GRACE_S=-1 is outside 0..3600",
        "JOB_TIME_LIMIT_S=0 is outside 1..86400",
    ]


def test_the_gallerys_public_address_is_unset_by_default_and_must_be_an_http_url():
    assert load_settings(VALID, env_file=None).gallery_public_url is None  # built from each request's Host
    chosen = load_settings({**VALID, "GALLERY_PUBLIC_URL": "https://videos.example.org/"}, env_file=None)
    assert chosen.gallery_public_url == "https://videos.example.org"
    assert problems({**VALID, "GALLERY_PUBLIC_URL": "videos.example.org"}) == [
        "GALLERY_PUBLIC_URL=videos.example.org is not a URL starting with https:// or http://, such as "
        "https://videos.example.org"]
    for behind_a_path in ("https://example.org/gallery/", "https://example.org/?x=1"):  # its links start at /
        assert problems({**VALID, "GALLERY_PUBLIC_URL": behind_a_path}) == [
            f"GALLERY_PUBLIC_URL={behind_a_path.rstrip('/')} is not the root of a host: the gallery's pages link "
            "from / of their host, so behind a path they would break; serve it at a host of its own, such as "
            "https://videos.example.org, and give that"]


def test_a_missing_token_says_where_to_get_one():
    assert problems({"T2V_MODEL": "tiny-random", "T2V_ALLOW_TINY": "1"}) == [
        "DISCORD_TOKEN is missing: set it to your bot token (Discord developer portal → Bot → Reset Token)"
    ]


def test_no_model_asks_for_the_weights_and_the_tiny_noise_model_is_refused_unless_allowed():
    assert problems({"DISCORD_TOKEN": TOKEN}) == [
        'T2V_MODEL is missing: set it to the folder of your weights (a ModelScope download, a `python -m t2v convert` '
        'export or a diffusers folder; README "Weights"); for tests only, T2V_MODEL=tiny-random with T2V_ALLOW_TINY=1 '
        "serves random noise"
    ]
    assert problems({"DISCORD_TOKEN": TOKEN, "T2V_MODEL": "tiny-random"}) == [
        "T2V_MODEL=tiny-random serves random noise, for tests only: set T2V_MODEL to the folder of your weights, or "
        "T2V_ALLOW_TINY=1 to serve tiny-random anyway"
    ]
    assert load_settings({"DISCORD_TOKEN": TOKEN, "T2V_MODEL": "/models/modelscope"}, env_file=None).t2v_model


def test_every_bad_value_is_named_on_its_own_line():
    env = {**VALID, "QUEUE_PER_USER_CAP": "0", "QUEUE_GLOBAL_CAP": "lots", "T2V_DEVICE": "gpu", "T2V_DTYPE": "fp4",
           "DEFAULT_GUIDANCE": "50", "STATUS_EDIT_INTERVAL_S": "0.2", "DISCORD_GUILD_ID": "my-server"}
    assert problems(env) == [
        "DISCORD_GUILD_ID=my-server is not a whole number: write the id alone, such as 123456789012345678 (Discord: "
        "Developer Mode → right-click → Copy ID)",
        "T2V_DEVICE=gpu is not cuda, cuda:N, cpu or a comma-separated list of them",
        "T2V_DTYPE=fp4 is not one of auto, float32, float16, bfloat16, fp8",
        "QUEUE_PER_USER_CAP=0 is outside 1..100",
        "QUEUE_GLOBAL_CAP=lots is not a whole number: from 1 to 10000, such as QUEUE_GLOBAL_CAP=100",
        "DEFAULT_GUIDANCE=50 is outside 1..30",
        "STATUS_EDIT_INTERVAL_S=0.2 is outside 1..60",
    ]


def test_a_value_with_a_newline_or_a_control_character_is_named_on_one_line_with_them_shown():
    """A quoted .env value keeps an escaped newline ("0\\n"), a paste can carry an ESC or a bidi override: the line
    naming the value stays one line, and shows them rather than printing them."""
    env = {**VALID, "ALLOWED_GUILD_IDS": "0\n", "T2V_DEVICE": "cpu\x1b[2J", "LOG_LEVEL": "INFO\u202e"}
    lines = problems(env)

    assert len(lines) == 3 and all("\n" not in line and "\x1b" not in line and "\u202e" not in line for line in lines)
    assert lines[0].startswith("ALLOWED_GUILD_IDS=0\\n is not a comma-separated list of server ids")
    assert lines[1].startswith("T2V_DEVICE=cpu\\x1b[2J is not cuda")
    assert lines[2].startswith("LOG_LEVEL=INFO\\u202e is not ")


def test_fp8_is_an_opt_in_for_gpus_without_styles_each_refusal_saying_why(tmp_path):
    assert load_settings({**VALID, "T2V_DTYPE": " FP8 "}, env_file=None).t2v_dtype == "fp8"
    assert problems({**VALID, "T2V_DTYPE": "fp8", "T2V_DEVICE": "cuda:0,cpu"}) == [
        "T2V_DTYPE=fp8 computes on GPUs with fp8 tensor cores, not on the CPU (T2V_DEVICE=cuda:0,cpu); use "
        "T2V_DTYPE=auto there"]
    styles = tmp_path / "styles.toml"
    assert problems({**VALID, "T2V_DTYPE": "fp8", "STYLES_FILE": str(styles)}) == [
        f"T2V_DTYPE=fp8 cannot serve the styles of STYLES_FILE={styles}: a style is fused into the UNet's weights, "
        "which fp8 keeps in e4m3, too coarse to hold it; use T2V_DTYPE=auto for styles, or leave STYLES_FILE unset"]
    assert problems({**VALID, "T2V_DTYPE": "fp4"}) == [
        "T2V_DTYPE=fp4 is not one of auto, float32, float16, bfloat16, fp8"]


def test_batching_and_the_fast_path_have_defaults_and_refuse_bad_values():
    settings = load_settings(VALID, env_file=None)
    assert (settings.batch_max, settings.t2v_optimize, settings.t2v_compile_cache) == (2, "auto", None)
    chosen = load_settings({**VALID, "BATCH_MAX": "1", "T2V_OPTIMIZE": " Off ", "T2V_COMPILE_CACHE": "/var/cache/t2v"},
                           env_file=None)
    assert (chosen.batch_max, chosen.t2v_optimize, chosen.t2v_compile_cache) == (1, "off", Path("/var/cache/t2v"))
    assert problems({**VALID, "BATCH_MAX": "17", "T2V_OPTIMIZE": "yes"}) == [
        "T2V_OPTIMIZE=yes is not one of auto, on, off; did you mean on?",
        "BATCH_MAX=17 is outside 1..16",
    ]
    assert problems({**VALID, "BATCH_MAX": "0"}) == ["BATCH_MAX=0 is outside 1..16"]


def test_the_executor_media_retention_and_ray_settings_refuse_bad_values_by_name(monkeypatch):
    settings = load_settings(VALID, env_file=None)
    assert (settings.t2v_executor, settings.ray_workers, settings.ray_worker_resource) == ("local", 0, "GPU")
    assert settings.media_keep_days == 30
    chosen = load_settings({**VALID, "T2V_EXECUTOR": " Ray ", "RAY_WORKER_RESOURCE": "fake_gpu"}, env_file=None)
    assert (chosen.t2v_executor, chosen.ray_worker_resource) == ("ray", "fake_gpu")
    assert problems({**VALID, "T2V_EXECUTOR": "slurm", "RAY_WORKERS": "-1", "RAY_WORKER_RESOURCE": "two gpus",
                     "MEDIA_KEEP_DAYS": "9999", "T2V_COMPILE_CACHE_MAX_GB": "-1"}) == [
        "T2V_COMPILE_CACHE_MAX_GB=-1 is outside 0..1000000",
        "T2V_EXECUTOR=slurm is not one of local, ray",
        "RAY_WORKERS=-1 is outside 0..1024",
        "RAY_WORKER_RESOURCE='two gpus' is not a resource name: use GPU or the name of a custom resource given to "
        "`ray start --resources` (CPU cannot be reserved per worker)",
        "MEDIA_KEEP_DAYS=9999 is outside 0..3650",
    ]
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None if name == "ray" else object())
    assert problems({**VALID, "T2V_EXECUTOR": "ray"}) == [
        "T2V_EXECUTOR=ray needs the ray package: pip install -e '.[ray]'"]


RAY = {**VALID, "T2V_EXECUTOR": "ray"}


@pytest.mark.parametrize(("address", "line"), [
    ("http://10.0.0.5:8265", "RAY_ADDRESS=http://10.0.0.5:8265 is the address of Ray's dashboard and job API, not of "
                             "the cluster: give the head's GCS address, such as 10.0.0.5:6379"),
    ("10.0.0.5", "RAY_ADDRESS=10.0.0.5 is not HOST:PORT (the head's GCS address, such as 10.0.0.5:6379), "
                 "ray://HOST:PORT, auto or local"),
    ("10.0.0.5:6379/", "RAY_ADDRESS=10.0.0.5:6379/ is not HOST:PORT"),
    ("[fd00::5:6379", "RAY_ADDRESS=[fd00::5:6379 is not HOST:PORT (the head's GCS address, such as HEAD:6379)"),
    ("http://[fd00::5", "RAY_ADDRESS=http://[fd00::5 is the address of Ray's dashboard"),
])
def test_a_ray_address_ray_cannot_join_is_refused_at_start_with_what_it_takes(address, line):
    [problem] = problems({**RAY, "RAY_ADDRESS": address})
    assert problem.startswith(line)


def test_a_ray_client_address_needs_ray_client_and_a_local_executor_ignores_the_ray_address(monkeypatch):
    for address in ("10.0.0.5:6379", "head.internal:6379", "[fd00::5]:6379", " auto ", "local"):
        assert load_settings({**RAY, "RAY_ADDRESS": address}, env_file=None).ray_address == address.strip()
    # set for `ray job submit` on the same host, it is not the bot's: T2V_EXECUTOR=local never reads it
    assert load_settings({**VALID, "RAY_ADDRESS": "http://127.0.0.1:8265"}, env_file=None).t2v_executor == "local"
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None if name == "grpc" else object())
    assert problems({**RAY, "RAY_ADDRESS": "ray://10.0.0.5:10001"}) == [
        "RAY_ADDRESS=ray://10.0.0.5:10001 joins through Ray Client, which needs its own packages: pip install "
        "'ray[client]' (or give the head's GCS address, such as 10.0.0.5:6379, from a node of the cluster)"]


@pytest.mark.parametrize(("given", "reserved"), [("gpu", "GPU"), ("Gpu", "GPU"), ("fake_gpu", "fake_gpu")])
def test_the_ray_worker_resource_gpu_is_ray_s_gpu_in_any_case(given, reserved):
    assert load_settings({**VALID, "RAY_WORKER_RESOURCE": given}, env_file=None).ray_worker_resource == reserved


def test_the_cpu_cannot_be_reserved_per_ray_worker_in_any_case():
    [line] = problems({**VALID, "RAY_WORKER_RESOURCE": "cpu"})
    assert line.startswith("RAY_WORKER_RESOURCE='cpu' is not a resource name")


@pytest.mark.parametrize("name", ["MEDIA_DIR", "T2V_COMPILE_CACHE", "STYLES_FILE", "T2V_MODEL", "UPSCALE_MODEL"])
def test_a_path_starting_with_a_tilde_is_refused_as_the_database_url_is(name):
    """Neither systemd's EnvironmentFile nor Docker's env files expand '~': MEDIA_DIR=~/media would be a folder named
    '~' in the working directory, and the operator would look for the videos in their home."""
    assert problems({**VALID, name: "~/videobot/x"}) == [
        f"{name}=~/videobot/x: '~' is not expanded here (it would be a folder named '~'); write the full path, "
        f"e.g. {Path('~/videobot/x').expanduser()}"]


@pytest.mark.parametrize("name", ["MEDIA_DIR", "T2V_COMPILE_CACHE", "STYLES_FILE", "T2V_MODEL", "UPSCALE_MODEL"])
@pytest.mark.parametrize("quote", ["'", '"'])
def test_a_path_in_quotes_is_refused_as_the_token_is_since_the_quotes_would_be_part_of_it(name, quote):
    """docker run --env-file keeps quotes: MEDIA_DIR='/srv/media' would be a folder named '/srv/media' (quotes and
    all) in the working directory."""
    assert problems({**VALID, name: f"{quote}/srv/videobot{quote}"}) == [
        f"{name}={quote}/srv/videobot{quote} is wrapped in quotes, which would be part of the path: remove them "
        f"({name}=/srv/videobot; docker run --env-file keeps quotes as they are)"]


@pytest.mark.parametrize("name", ["MEDIA_DIR", "T2V_COMPILE_CACHE", "STYLES_FILE", "T2V_MODEL", "UPSCALE_MODEL"])
@pytest.mark.parametrize("value", [" /srv/videobot", "/srv/videobot  "])
def test_a_path_with_spaces_at_its_ends_is_refused_showing_them(name, value):
    assert problems({**VALID, name: value}) == [
        f"{name}={value!r} has spaces at its ends, which would be part of the path: remove them "
        f"({name}=/srv/videobot)"]


def test_a_database_url_in_quotes_is_refused_with_its_password_hidden():
    assert problems({**VALID, "DATABASE_URL": "'postgresql://bot:secret@db/videobot'"}) == [
        "DATABASE_URL='postgresql://bot:***@db/videobot' is wrapped in quotes: remove them (DATABASE_URL="
        "postgresql://bot:***@db/videobot; docker run --env-file keeps quotes as they are)"]


@pytest.mark.parametrize(("name", "host"), [("HEALTH_HOST", "localhost:9090"), ("GALLERY_HOST", "http://0.0.0.0"),
                                            ("HEALTH_HOST", "127.0.0.1/32")])
def test_a_listen_host_with_a_port_or_a_scheme_is_refused_naming_the_port_setting(name, host):
    """The bot would start without /healthz (one log line), and the container's health check would blame the bot."""
    port = name.replace("HOST", "PORT")
    assert problems({**VALID, name: host}) == [
        f"{name}={host} is not a host name or an IP address: give the address alone, such as 127.0.0.1 (this host "
        f"only) or 0.0.0.0 (every address), and the port in {port}"]


def test_listen_hosts_take_names_and_addresses_of_both_families():
    for host in ("0.0.0.0", "::", "::1", "localhost", "bot.internal", "10.0.0.5"):
        assert load_settings({**VALID, "HEALTH_HOST": host}, env_file=None).health_host == host


@pytest.mark.parametrize(("env", "line"), [
    ({"SHUTDOWN_GRACE_S": "60s"}, "SHUTDOWN_GRACE_S=60s is not a number: write the seconds alone, from 0 to 3600, "
                                  "such as SHUTDOWN_GRACE_S=60"),
    ({"JOB_TIME_LIMIT_S": "10m"}, "JOB_TIME_LIMIT_S=10m is not a number: write the seconds alone, from 1 to 86400, "
                                  "such as JOB_TIME_LIMIT_S=600"),
    ({"T2V_COMPILE_CACHE_MAX_GB": "20GB"}, "T2V_COMPILE_CACHE_MAX_GB=20GB is not a number: write the GB alone, from "
                                           "0 to 1000000, such as T2V_COMPILE_CACHE_MAX_GB=20"),
    ({"MEDIA_KEEP_DAYS": "30d"}, "MEDIA_KEEP_DAYS=30d is not a whole number: write the days alone, from 0 to 3650, "
                                 "such as MEDIA_KEEP_DAYS=30"),
    ({"HEALTH_PORT": "http"}, "HEALTH_PORT=http is not a whole number: from 1 to 65535, such as HEALTH_PORT=9090"),
    ({"DEFAULT_FRAMES": "2s"}, "DEFAULT_FRAMES=2s is not a whole number: from 1 to 64"),
])
def test_a_number_written_with_its_unit_or_in_words_is_refused_with_what_to_write(env, line):
    assert problems({**VALID, **env}) == [line]


def test_history_is_kept_forever_or_at_least_as_far_back_as_a_monthly_quota_counts():
    assert load_settings(VALID, env_file=None).history_keep_days == 0  # unset: every row kept (upgrades delete nothing)
    assert [load_settings({**VALID, "HISTORY_KEEP_DAYS": days}, env_file=None).history_keep_days
            for days in ("0", "32", "36500")] == [0, 32, 36500]
    assert problems({**VALID, "HISTORY_KEEP_DAYS": "31"}) == [
        "HISTORY_KEEP_DAYS=31 would forget jobs the monthly quota still counts; use 0 (keep forever) or 32 or more"]
    assert problems({**VALID, "HISTORY_KEEP_DAYS": "-5"}) == ["HISTORY_KEEP_DAYS=-5 is outside 0..36500"]


def test_defaults_above_the_server_caps_are_refused():
    env = {**VALID, "DEFAULT_STEPS": "80", "MAX_STEPS": "60", "DEFAULT_FRAMES": "24", "MAX_FRAMES": "16"}
    assert problems(env) == [
        "DEFAULT_STEPS=80 is above MAX_STEPS=60: set DEFAULT_STEPS to 60 or less, or MAX_STEPS to 80 or more",
        "DEFAULT_FRAMES=24 is above MAX_FRAMES=16: set DEFAULT_FRAMES to 16 or less, or MAX_FRAMES to 24 or more",
    ]


def test_a_server_cap_lowered_below_an_unset_default_says_which_default_and_what_to_set():
    # "DEFAULT_STEPS=50 is above MAX_STEPS=10" named a setting the operator never set, and no way out
    assert problems({**VALID, "MAX_STEPS": "10"}) == [
        "DEFAULT_STEPS=50 (its default) is above MAX_STEPS=10: set DEFAULT_STEPS to 10 or less, or MAX_STEPS to 50 or "
        "more"]


def test_server_caps_cannot_exceed_the_engine_limits():
    assert problems({**VALID, "MAX_STEPS": "500", "MAX_FRAMES": "65"}) == [
        "MAX_STEPS=500 is outside 1..150",
        "MAX_FRAMES=65 is outside 1..64",
    ]


def test_names_are_case_insensitive_and_empty_values_mean_unset():
    settings = load_settings({"discord_token": TOKEN, "t2v_model": "tiny-random", "t2v_allow_tiny": "true",
                              "Mod_Role_Id": "42",
                              "DISCORD_GUILD_ID": "", "t2v_device": "CUDA:0, cuda:1", "log_level": "debug"},
                             env_file=None)
    assert settings.mod_role_id == 42 and settings.discord_guild_id is None
    assert settings.t2v_device == "cuda:0,cuda:1"
    assert settings.log_level == "DEBUG"


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"DISCORD_TOKEN={TOKEN}\nT2V_MODEL=tiny-random\nT2V_ALLOW_TINY=1\nQUEUE_GLOBAL_CAP=7\n"
                        "MAX_FRAMES=24\n")
    settings = load_settings({"MAX_FRAMES": "20"}, env_file=str(env_file))
    assert settings.discord_token.get_secret_value() == TOKEN
    assert (settings.queue_global_cap, settings.max_frames) == (7, 20)


def test_the_process_environment_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("T2V_MODEL", "tiny-random")
    monkeypatch.setenv("T2V_ALLOW_TINY", "1")
    monkeypatch.setenv("QUEUE_PER_USER_CAP", "5")
    assert load_settings(env_file=None).queue_per_user_cap == 5


@pytest.mark.parametrize(("given", "line"), [
    (f"Bearer {TOKEN}", "DISCORD_TOKEN starts with 'Bearer ': set it to the token alone, without that prefix"),
    ("<your bot token>", "DISCORD_TOKEN contains spaces, which a bot token never has: set it to the token alone, "
                         "copied from the developer portal's Bot page (Reset Token)"),
    (f"{TOKEN} {TOKEN}", "DISCORD_TOKEN contains spaces, which a bot token never has: set it to the token alone, "
                         "copied from the developer portal's Bot page (Reset Token)"),
])
def test_a_token_with_spaces_is_told_of_a_prefix_only_when_it_has_one(given: str, line: str):
    # every token with a space was told to drop "a 'Bot ' prefix", a placeholder's or a token pasted twice too
    assert problems({**VALID, "DISCORD_TOKEN": given}) == [line]


def test_the_token_never_appears_in_reprs_or_errors():
    settings = load_settings(VALID, env_file=None)
    for text in (repr(settings), str(settings), repr(settings.discord_token)):
        assert "secret-part" not in text
    assert "Settings(" in repr(settings) and "_Explicit" not in repr(settings)
    lines = problems({**VALID, "DISCORD_TOKEN": f"Bot {TOKEN}"})
    assert lines == ["DISCORD_TOKEN starts with 'Bot ': set it to the token alone, without that prefix"]
    assert problems({**VALID, "DISCORD_TOKEN": "   "}) == [
        "DISCORD_TOKEN is empty: set it to your bot token (Discord developer portal → Bot → Reset Token)"
    ]


@pytest.mark.parametrize(("token", "line"), [
    (f'"{TOKEN}"', "DISCORD_TOKEN is wrapped in quotes: set it to the token alone (docker run --env-file keeps "
                   "quotes as part of the value)"),
    (f"'{TOKEN}'", "DISCORD_TOKEN is wrapped in quotes"),
    (f"{TOKEN}ö", "DISCORD_TOKEN has characters a Discord bot token never has"),
    (f"{TOKEN};", "DISCORD_TOKEN has characters a Discord bot token never has"),
])
def test_a_token_discord_would_refuse_for_its_form_is_refused_here_without_echoing_it(token, line):
    lines = problems({**VALID, "DISCORD_TOKEN": token})
    assert len(lines) == 1 and lines[0].startswith(line) and "secret-part" not in lines[0]


@pytest.mark.parametrize(("env", "cache"), [
    ({}, "compile-cache"),  # beside videobot.db in the working directory (systemd: the state directory)
    ({"DATABASE_URL": "sqlite+aiosqlite:////data/videobot.db"}, "/data/compile-cache"),  # Docker's /data volume
    ({"DATABASE_URL": "postgresql://bot:pw@db/videobot", "MEDIA_DIR": "/srv/bot/media"}, "/srv/bot/compile-cache"),
    ({"DATABASE_URL": "sqlite+aiosqlite:////data/videobot.db", "T2V_COMPILE_CACHE": "/cache/t2v"}, "/cache/t2v"),
])
def test_the_compile_cache_lives_beside_the_database_unless_set(env, cache):
    assert load_settings({**VALID, **env}, env_file=None).compile_cache == Path(cache)


def test_the_server_allowlist_operators_and_gallery_front_page_are_read_and_checked():
    defaults = load_settings(VALID, env_file=None)
    assert (defaults.allowed_guild_ids, defaults.operator_user_ids, defaults.gallery_front_page) == ((), (), "all")
    chosen = load_settings({**VALID, "ALLOWED_GUILD_IDS": " 11, 22 ,", "OPERATOR_USER_IDS": "33",
                            "DISCORD_GUILD_ID": "22", "GALLERY_FRONT_PAGE": "Servers"}, env_file=None)
    assert (chosen.allowed_guild_ids, chosen.operator_user_ids, chosen.gallery_front_page) == ((11, 22), (33,),
                                                                                              "servers")
    # a server id as the gallery's links name it (its page is /): 042 is 42
    assert load_settings({**VALID, "GALLERY_FRONT_PAGE": " 042 "}, env_file=None).gallery_front_page == "42"
    assert problems({**VALID, "ALLOWED_GUILD_IDS": "11;x", "OPERATOR_USER_IDS": "0", "GALLERY_FRONT_PAGE": "home"}) == [
        "ALLOWED_GUILD_IDS=11;x is not a comma-separated list of server ids: use whole numbers such as "
        "123456789012345678,223456789012345678 (Discord: Developer Mode → right-click → Copy ID)",
        "OPERATOR_USER_IDS=0 is not a comma-separated list of user ids: use whole numbers such as "
        "123456789012345678,223456789012345678 (Discord: Developer Mode → right-click → Copy ID)",
        "GALLERY_FRONT_PAGE=home is not all, servers or a server id (a whole number such as 123456789012345678)",
    ]
    assert problems({**VALID, "ALLOWED_GUILD_IDS": "11,22", "DISCORD_GUILD_ID": "33"}) == [
        "DISCORD_GUILD_ID=33 is not in ALLOWED_GUILD_IDS=11,22: add it there, or the bot would leave the server it "
        "syncs its commands to"]
    # an id no server can have (above 2⁶³ − 1, or digits that are not 0-9) would make the bot leave every server
    impossible = {"ALLOWED_GUILD_IDS": "99999999999999999999999", "OPERATOR_USER_IDS": "²",
                  "GALLERY_FRONT_PAGE": "99999999999999999999999"}
    assert [line.split(" is not ")[0] for line in problems({**VALID, **impossible})] == [
        f"{name}={value}" for name, value in impossible.items()]


def test_two_workers_on_one_device_and_the_gallery_and_health_on_one_port_are_refused():
    assert problems({**VALID, "T2V_DEVICE": "cuda:0, cuda:0"}) == [
        "T2V_DEVICE=cuda:0, cuda:0 names cuda:0 twice: each device gets one worker, so name it once"]
    assert problems({**VALID, "T2V_DEVICE": "cuda:0,cuda:00"}) == [
        "T2V_DEVICE=cuda:0,cuda:00 names cuda:0 twice: each device gets one worker, so name it once"]
    assert problems({**VALID, "T2V_DEVICE": "cuda,cuda:1"}) == [
        "T2V_DEVICE=cuda,cuda:1: cuda already means every GPU; name either cuda or the cuda:N you want"]
    clash = {"GALLERY_ENABLED": "1", "GALLERY_PORT": "9090"}  # /healthz is on by default, at 9090
    assert problems({**VALID, **clash}) == [
        "GALLERY_PORT and HEALTH_PORT are both 9090 (GALLERY_HOST=127.0.0.1, HEALTH_HOST=127.0.0.1): the web gallery "
        "and /healthz cannot listen on one port; give one of them another (the defaults are 8080 and 9090)"]
    assert problems({**VALID, **clash, "HEALTH_HOST": "0.0.0.0"})  # every IPv4 address includes the gallery's
    for gallery, health in (("::", "0.0.0.0"), ("::", "127.0.0.1"), ("0.0.0.0", "::1")):  # IPv6 sockets are v6-only
        load_settings({**VALID, **clash, "GALLERY_HOST": gallery, "HEALTH_HOST": health}, env_file=None)
    load_settings({**VALID, **clash, "HEALTH_ENABLED": "0"}, env_file=None)  # no clash: these load
    load_settings({**VALID, **clash, "GALLERY_HOST": "127.0.0.2"}, env_file=None)


def test_a_variable_spelled_almost_like_a_setting_is_named_with_the_setting_it_resembles(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# comments and blank lines are fine\n\nMAX_FRAME=24\nT2V_DEVICE=cpu\n")
    lines = misspelled({"T2V_DEVICES": "cuda:1", "DATABASE_URI": "sqlite+aiosqlite:///x.db", "T2V_MODEL": "m",
                        "PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0", "POSTGRES_PASSWORD": "pw", "HF_HOME": "/h"},
                       env_file=str(env_file))
    assert lines == [
        "T2V_DEVICES (in the environment) is not a setting the bot reads, so it is ignored; did you mean T2V_DEVICE?",
        "DATABASE_URI (in the environment) is not a setting the bot reads, so it is ignored; did you mean "
        "DATABASE_URL?",
        f"MAX_FRAME (in {env_file}) is not a setting the bot reads, so it is ignored; did you mean MAX_FRAMES?"]
    assert misspelled(VALID, env_file=str(tmp_path / "missing.env")) == []


@pytest.mark.parametrize(("url", "line"), [
    ("sqlite+aiosqlite://", "DATABASE_URL=sqlite+aiosqlite:// keeps the database in memory: the queue, quotas, "
                            "blocks and audit log would be lost at every restart; name a file"),
    ("sqlite+aiosqlite:///:memory:", "DATABASE_URL=sqlite+aiosqlite:///:memory: keeps the database in memory"),
    ("sqlite+aiosqlite:///~/bot.db", "DATABASE_URL=sqlite+aiosqlite:///~/bot.db: '~' is not expanded here (it would "
                                     "be a folder named '~'); write the full path, e.g. sqlite+aiosqlite:////"),
    ("postgresql://bot:p@ss@db/videobot", "DATABASE_URL=postgresql://bot:***@db/videobot: the user and password part "
                                          "holds a '@' or '#' of its own: URL-encode the password"),
])
def test_database_urls_that_would_lose_data_or_leak_a_password_are_refused(url, line):
    assert [problem[:len(line)] for problem in problems({**VALID, "DATABASE_URL": url})] == [line]


def test_an_env_file_the_bot_cannot_read_whole_is_named_with_what_to_do(tmp_path: Path, monkeypatch):
    from bot.env_file import malformed_lines, unreadable

    env = tmp_path / ".env"
    assert unreadable(str(env)) is None and malformed_lines(str(env)) == []  # none: nothing to read
    env.write_text(f"DISCORD_TOKEN={TOKEN}\nexport T2V_DEVICE=cpu\n# a comment\n\nQUEUE_GLOBAL_CAP 7\n=x\n")
    assert unreadable(str(env)) is None
    assert malformed_lines(str(env)) == [
        f"{env} line 5 is not NAME=value, so the bot would ignore it; correct it or make it a comment (#)",
        f"{env} line 6 is not NAME=value, so the bot would ignore it; correct it or make it a comment (#)"]
    assert not any("secret-part" in line for line in malformed_lines(str(env)))
    env.write_bytes(f"DISCORD_TOKEN={TOKEN}\n".encode("utf-16"))
    assert unreadable(str(env)) == f"{env} is not UTF-8 text (byte 0xff at offset 0); save it as UTF-8"
    assert malformed_lines(str(env)) == []  # the one line above says it all
    env.write_bytes(b"\xef\xbb\xbfDISCORD_TOKEN=a.token-of.a-bot\r\n")  # a byte-order mark and CRLF line ends are fine
    assert unreadable(str(env)) is None and malformed_lines(str(env)) == []

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    line = unreadable(str(env))
    assert line.startswith(f"{env}: permission denied for user ") and line.endswith("set the variables in the "
                                                                                    "environment")


@pytest.mark.parametrize(("env", "line"), [
    ({"DISCORD_GUILD_ID": "0"}, "DISCORD_GUILD_ID=0 is outside 1..9223372036854775807"),
    ({"MOD_ROLE_ID": "-1"}, "MOD_ROLE_ID=-1 is outside 1..9223372036854775807"),
    ({"SHOWCASE_CHANNEL_ID": "0"}, "SHOWCASE_CHANNEL_ID=0 is outside 1..9223372036854775807"),
    ({"TOKEN_FALLBACK_AFTER_S": "900"}, "TOKEN_FALLBACK_AFTER_S=900 is outside 1..890"),
    ({"LOG_LEVEL": "warn"},
     "LOG_LEVEL=warn is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL; did you mean WARNING?"),
])
def test_ids_no_server_has_a_token_edit_at_its_death_and_a_level_alias_are_refused_helpfully(env, line):
    assert problems({**VALID, **env}) == [line]


def test_names_other_bots_use_for_a_setting_are_named_with_it_once_each(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("MOD_ROLE=123456789012345678\nOPERATOR_IDS=223456789012345678\nGUILD_ID=1\nT2V_MODEL_PATH=/m\n"
                        "BOT_TOKEN=x\nTOKEN=x\nDB_URL=sqlite+aiosqlite:///x.db\nDEVICE=cpu\nMEDIA_PATH=/srv/media\n")
    lines = misspelled({"mod_role": "123456789012345678", **VALID}, env_file=str(env_file))  # set twice: told once
    meant = {line.split(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in lines}
    assert meant == {"MOD_ROLE": "MOD_ROLE_ID?", "OPERATOR_IDS": "OPERATOR_USER_IDS?", "GUILD_ID": "DISCORD_GUILD_ID?",
                     "T2V_MODEL_PATH": "T2V_MODEL?", "BOT_TOKEN": "DISCORD_TOKEN?", "TOKEN": "DISCORD_TOKEN?",
                     "DB_URL": "DATABASE_URL?", "DEVICE": "T2V_DEVICE?", "MEDIA_PATH": "MEDIA_DIR?"}
    assert lines[0] == (f"MOD_ROLE (in {env_file}) is not a setting the bot reads, so it is ignored; did you mean "
                        "MOD_ROLE_ID?")


ORDINARY = (  # a shell's, a CUDA container's, systemd's, Docker Compose's and CI's variables
    "PATH", "HOME", "LANG", "LANGUAGE", "TERM", "SHELL", "USER", "LOGNAME", "PWD", "HOSTNAME", "TZ", "LC_ALL",
    "XDG_RUNTIME_DIR", "SSH_AUTH_SOCK", "TMPDIR", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
    "PYTHON_VERSION", "PIP_NO_CACHE_DIR", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_VERSION",
    "CUDA_DEVICE_ORDER", "CUDA_LAUNCH_BLOCKING", "CUDNN_VERSION", "NVIDIA_VISIBLE_DEVICES", "NV_CUDA_LIB_VERSION",
    "NVIDIA_DRIVER_CAPABILITIES", "NCCL_DEBUG", "LD_LIBRARY_PATH", "TORCH_HOME", "TORCH_CUDA_ARCH_LIST",
    "TORCHINDUCTOR_CACHE_DIR", "TORCH_LOGS", "TORCH_DEVICE", "PYTORCH_CUDA_ALLOC_CONF", "OMP_NUM_THREADS",
    "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM", "HF_HOME", "HF_TOKEN", "HF_HUB_OFFLINE", "RAY_DEDUP_LOGS",
    "RAY_NAMESPACE", "INVOCATION_ID", "JOURNAL_STREAM", "STATE_DIRECTORY", "RUNTIME_DIRECTORY",
    "CREDENTIALS_DIRECTORY", "POSTGRES_PASSWORD", "PGPASSWORD", "T2V_WEIGHTS", "COMPOSE_PROJECT_NAME", "HTTP_PROXY",
    "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "CI", "GITHUB_TOKEN", "PYTEST_CURRENT_TEST",
)


def test_ordinary_environment_variables_are_never_taken_for_settings():
    assert misspelled(dict.fromkeys(ORDINARY, "x"), env_file=None) == []
    # a name as plain as TOKEN or DEVICE may be another program's: named only while the setting it would be is unset
    assert misspelled({**VALID, "T2V_DEVICE": "cpu", "TOKEN": "x", "DEVICE": "0"}, env_file=None) == []
    assert [line.rsplit(" ", 1)[1] for line in misspelled({"TOKEN": "x", "DEVICE": "cpu"}, env_file=None)] == [
        "DISCORD_TOKEN?", "T2V_DEVICE?"]


def test_after_wrong_settings_the_others_are_read_for_the_checks_of_what_they_name():
    from bot.settings import load_what_validates

    settings, wrong = load_what_validates({"T2V_MODEL": "/srv/weights/modelscope", "T2V_DEVICE": "gpu",
                                           "MEDIA_DIR": "/srv/media", "MAX_STEPS": "lots"}, env_file=None)
    assert wrong == {"discord_token", "t2v_device", "max_steps"}
    assert (settings.t2v_model, settings.media_dir, settings.t2v_device) == ("/srv/weights/modelscope",
                                                                             Path("/srv/media"), "cuda")  # default
    # a check across settings that fails whatever the wrong one is: nothing to check on
    assert load_what_validates({**VALID, "GALLERY_ENABLED": "1", "GALLERY_PORT": "9090"}, env_file=None) is None
    # the tiny preset without T2V_ALLOW_TINY: the others are still read (its default, False, failed again: none were)
    settings, wrong = load_what_validates({"DISCORD_TOKEN": TOKEN, "T2V_MODEL": "tiny-random", "T2V_DEVICE": "cuda:1",
                                           "MEDIA_DIR": "/srv/media"}, env_file=None)
    assert wrong == {"t2v_allow_tiny"} and (settings.t2v_device, settings.media_dir) == ("cuda:1", Path("/srv/media"))
