"""deploy/compose.yaml bounds every container's log, and keeps restarting the bot (README "Deploy" says why a bad
.env restarts too, and what the operator does)."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "deploy" / "compose.yaml"
MB = 1024 * 1024


def size(value: str) -> int:
    """Docker's log size ("10m", "512k", "1g") in bytes."""
    units = {"k": 1024, "m": MB, "g": 1024 * MB}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].lower() in units else int(value)


def test_every_service_rotates_its_json_file_log_within_a_hundred_megabytes() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service in services.items():
        logging = service["logging"]
        options = logging["options"]
        assert logging["driver"] == "json-file", name
        assert all(isinstance(value, str) for value in options.values()), name  # Docker takes log options as strings
        assert size(options["max-size"]) * int(options["max-file"]) <= 100 * MB, name


def test_the_bot_is_restarted_after_every_exit_however_often_it_fails() -> None:
    bot = yaml.safe_load(COMPOSE.read_text())["services"]["bot"]
    assert bot["restart"] == "unless-stopped"  # on-failure:N would count every restart of its life and then give up
    assert "restart_policy" not in bot.get("deploy", {})
