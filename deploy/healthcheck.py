"""Container health check: GET the bot's own /healthz (HEALTH_HOST:HEALTH_PORT, as `python -m bot` serves it).

/healthz is healthy (200) when the bot is connected to the Discord gateway, has the model loaded and its database
answers; otherwise it answers 503 with the problems named, and they are printed here. Nothing answering at all
means the bot is not running (or HEALTH_ENABLED=0: then turn the container's health check off too). Exit status 0
healthy, 1 unhealthy with one line on stderr (Docker keeps it in `docker inspect`'s health log). Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", "9090"  # the bot's defaults (bot.settings)
LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}  # listening everywhere: ask locally
TIMEOUT_S = 8.0  # above the bot's own database probe (5 s: a stuck database is a 503 naming it), below the
# HEALTHCHECK's --timeout (10 s: Docker would kill this check and record nothing it said)
OFF = ("0", "false", "f", "no", "n", "off")  # what the bot reads as false (pydantic's booleans), any case
# Never through a proxy: urlopen would take http_proxy from the environment (Docker puts its client's proxies in every
# container's), and a proxy cannot reach this container's own loopback.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def url_from(env: dict[str, str]) -> str:
    """The /healthz URL the bot serves under these settings."""
    host = env.get("HEALTH_HOST", DEFAULT_HOST).strip()
    host = LOOPBACK.get(host, host)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host  # an IPv6 address
    return f"http://{host}:{env.get('HEALTH_PORT', DEFAULT_PORT).strip() or DEFAULT_PORT}/healthz"


def problems(body: bytes) -> str:
    """The problems a 503 names, or its body as it is."""
    try:
        return "; ".join(json.loads(body)["problems"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:300]


def check(url: str) -> str | None:
    """None when /healthz says healthy, else why not."""
    try:
        with DIRECT.open(url, timeout=TIMEOUT_S) as response:
            response.read()
            return None
    except urllib.error.HTTPError as error:
        return f"{url} answered {error.code}: {problems(error.read())}"
    except OSError as error:  # refused, unreachable, timed out
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError):  # something listens but does not answer: not a bot that is down
            return f"{url} did not answer within {TIMEOUT_S:g} s: the bot is running but stuck or overloaded"
        return f"nothing answers at {url} ({reason}): is the bot running, with HEALTH_ENABLED=1?"


def main() -> int:
    """Check the bot's /healthz; 0 healthy, 1 unhealthy."""
    env = {key.upper(): value for key, value in os.environ.items()}
    if env.get("HEALTH_ENABLED", "1").strip().lower() in OFF:
        print("unhealthy: HEALTH_ENABLED=0 turns /healthz off; turn this health check off too", file=sys.stderr)
        return 1
    trouble = check(url_from(env))
    if trouble is not None:
        print(f"unhealthy: {trouble}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
