"""A logging filter that keeps credentials out of the logs: interaction tokens, URL passwords, and any secret it is
given (`python -m bot` gives it the bot token and DATABASE_URL's password, percent-decoded as the driver uses it and
as the URL writes it).

discord.py logs, at DEBUG, every REST URL (`/webhooks/<app>/<token>/...`, `/interactions/<id>/<token>/callback`) and
every gateway event (INTERACTION_CREATE carries `'token': '...'`). An interaction token is a credential for 15
minutes: whoever holds it can answer as the bot. The bot token itself is never logged by the bot or discord.py;
the filter also masks it as a second line of defence. aiosqlite logs every statement with its parameters at DEBUG
(job rows carry interaction tokens and prompts), which no pattern can mask, and so does SQLAlchemy's engine logger
whenever the root logger is at INFO or below: those loggers stay at WARNING.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

log = logging.getLogger(__name__)

MASK = "[redacted]"
VERBOSE_LOGGERS = ("aiosqlite", "sqlalchemy.engine")  # print SQL parameters at DEBUG and INFO; kept at WARNING
MIN_SECRET = 4  # shorter secrets are not masked wherever they occur (they would blank out ordinary words)
_PATTERNS = (
    re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?#'\"]+"),  # REST paths that carry an interaction token
    re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+"""),  # "token": "..." in JSON and Python reprs
    re.compile(r"(\b[a-z][\w+.-]*://[^\s:/@]*:)[^\s/@]+(?=@)", re.IGNORECASE),  # scheme://user:PASSWORD@host
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with interaction tokens and every given secret replaced by MASK."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\g<1>{MASK}", text)
    return text


class RedactTokens(logging.Filter):
    """Rewrites each record's message (and traceback text) with `redact`; never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # longest first: a secret that holds another (a password as the URL writes it, `hunter2%25`, holds the
        # decoded `hunter2%`) is masked whole, not around the shorter one
        kept = {secret for secret in secrets if secret and len(secret) >= MIN_SECRET}
        self.secrets = tuple(sorted(kept, key=lambda secret: (-len(secret), secret)))

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place, so that every handler after this one sees the masked text too."""
        message = record.getMessage()
        masked = redact(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def install(handlers: Iterable[logging.Handler], secrets: Iterable[str | None] = ()) -> RedactTokens:
    """Add one RedactTokens to each handler and keep VERBOSE_LOGGERS at WARNING or above; returns the filter."""
    redactor = RedactTokens(secret for secret in secrets if secret)
    for handler in handlers:
        handler.addFilter(redactor)
    for name in VERBOSE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    return redactor
