"""Settings: which site, which host, where the key comes from, where output goes.

Everything here is validated up front so that a wrong setting is a one-line ConfigError
before any request is spent. The API key is wrapped in :class:`Secret` so it cannot reach a
log line or an exception by accident.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from extractor.errors import ConfigError

KEY_ENV = "TWELVETWENTY_API_KEY"
MAX_CONCURRENCY = 3  # the API's per-school limit, shared with the school's other integrations
MAX_PAGE_SIZE = 500  # the API refuses larger pages
DEFAULT_DAILY_LIMIT = 5000  # the article's per-school daily limit
DEFAULT_ENTITIES = (
    "students",
    "companies",
    "contacts",
    "notes",
    "events",
    "job-postings",
    "lookups",
    "attributes",
)
_SITE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class Secret:
    """A string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for putting it on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_api_key(key_file: Path | None, environ: dict[str, str] | None = None) -> Secret:
    """The API key from ``key_file`` if given, else from $TWELVETWENTY_API_KEY.

    Never from the command line: arguments are visible to every user of the machine.
    """
    env = os.environ if environ is None else environ
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {key_file}: {exc.strerror}") from None
        if not text:
            raise ConfigError(f"key file {key_file} is empty")
        return Secret(text)
    value = env.get(KEY_ENV, "").strip()
    if not value:
        raise ConfigError(f"no API key: set {KEY_ENV} or pass --key-file PATH")
    return Secret(value)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_base_url(site: str, *, sandbox: bool = False, base_url: str | None = None) -> str:
    """The API's origin for ``site``: production, sandbox, or an explicit URL.

    Plain http:// is refused unless the host is a loopback address (the simulator): the
    article requires HTTPS, and the token would otherwise cross the network in clear.
    """
    if not _SITE.match(site):
        raise ConfigError(
            f"site {site!r} is not a 12Twenty subdomain (letters, digits and dashes, "
            "as in https://SITE.admin.12twenty.com)"
        )
    if base_url is None:
        domain = "admin.sandbox-12twenty.com" if sandbox else "admin.12twenty.com"
        return f"https://{site}.{domain}"
    if sandbox:
        raise ConfigError("--sandbox and --base-url are alternatives: give one")
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"--base-url {base_url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"--base-url {base_url!r} uses plain http: only https is allowed "
            "(plain http only for a loopback simulator)"
        )
    if parts.query or parts.fragment:
        raise ConfigError("--base-url must not carry a query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def parse_entities(text: str | None, known: tuple[str, ...] = DEFAULT_ENTITIES) -> tuple[str, ...]:
    """``students,companies`` -> a validated, de-duplicated tuple in the given order."""
    if text is None:
        return known
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in known:
            raise ConfigError(f"unknown entity {name!r}; known: {', '.join(known)}")
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError("--entities names no entity")
    return tuple(names)


@dataclass(frozen=True)
class Settings:
    """One extraction's settings, validated."""

    site: str
    base_url: str
    api_key: Secret
    out_dir: Path
    entities: tuple[str, ...] = DEFAULT_ENTITIES
    concurrency: int = MAX_CONCURRENCY
    page_size: int = MAX_PAGE_SIZE
    full: bool = False
    request_timeout: float = 120.0
    max_attempts: int = 6  # per request, the first included (core.backoff.RetryPolicy)
    state_path: Path | None = None  # None: run without durable state (tests, one-offs)
    max_requests_per_day: int = DEFAULT_DAILY_LIMIT
    reserve: int = 0
    budget_window: str = "rolling"
    wait: bool = False
    lookback: timedelta = timedelta(hours=1)
    details: tuple[str, ...] = ()  # entities whose records get their detail endpoint too

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ConfigError(
                f"--concurrency {self.concurrency}: must be 1 to {MAX_CONCURRENCY} "
                "(12Twenty allows 3 requests in flight per school)"
            )
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"--page-size {self.page_size}: must be 1 to {MAX_PAGE_SIZE}")
        if self.max_attempts < 1:
            raise ConfigError("max attempts must be at least 1")
        if self.max_requests_per_day < 1:
            raise ConfigError("--max-requests-per-day must be at least 1")
        if not 0 <= self.reserve < self.max_requests_per_day:
            raise ConfigError(
                f"--reserve {self.reserve}: must be 0 to {self.max_requests_per_day - 1} "
                "(below --max-requests-per-day)"
            )
        if self.lookback < timedelta(0):
            raise ConfigError("--lookback must not be negative")
        if self.budget_window not in ("rolling", "utc-day"):
            raise ConfigError("--budget-window must be 'rolling' or 'utc-day'")
