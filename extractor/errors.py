"""The one error tree.

Children are grouped by what the caller does about them:
- ``TransientError``: retry (with backoff).
- ``BudgetExhausted``: stop cleanly, persist, resume when the budget frees.
- ``ConfigError`` / ``AuthError``: the user must fix something.
- ``SchemaError``: the data is not what was declared.
- ``ApiError``: the API refused a request in a way retrying will not fix.

Messages never carry the API key or the token: use :func:`redact` on anything that may
hold a URL before putting it in a message.
"""

from __future__ import annotations

import re

# Exit statuses of the command line.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, after a graceful stop

_SECRET_QUERY = re.compile(r"(?i)([?&](?:key|token|api_key|apikey)=)[^&#\s'\"]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str, *secrets: str) -> str:
    """Remove API keys and tokens from ``text``.

    Query parameters named key/token are blanked, ``Bearer ...`` values are blanked, and
    every literal in ``secrets`` (the key and token themselves) is replaced.
    """
    out = _SECRET_QUERY.sub(r"\1***", text)
    out = _BEARER.sub(r"\1***", out)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out


class ExtractorError(Exception):
    """Root of every error the extractor raises on purpose."""

    exit_status = EXIT_FAILURE


class ConfigError(ExtractorError):
    """The command line, environment or configuration is wrong; the user must fix it."""

    exit_status = EXIT_USAGE


class AuthError(ExtractorError):
    """The API key or token was refused."""

    exit_status = EXIT_USAGE


class TransientError(ExtractorError):
    """A failure that may succeed when retried (429 burst, 5xx, reset, timeout, bad body)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExhausted(ExtractorError):
    """The day's request budget is spent: stop, persist, and resume when it frees."""

    exit_status = EXIT_BUDGET

    def __init__(self, message: str, *, resume_at: float | None = None) -> None:
        super().__init__(message)
        self.resume_at = resume_at  # POSIX seconds when the budget next allows a request


class ApiError(ExtractorError):
    """The API answered with a status that retrying will not change (4xx other than 401/429)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class SchemaError(ExtractorError):
    """A schema file or a page does not have the shape the extractor relies on."""
