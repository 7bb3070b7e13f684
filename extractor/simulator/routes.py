"""Case-insensitive route resolution.

Real clients call ``/Api/V2/Events/123`` and ``/api/V2/lookups/285/Options``, and the API
answers them all. aiohttp's router is case-sensitive and picks the handler before any
middleware runs, so the simulator registers one catch-all handler and resolves the path
here: one ``lower()`` and one ``split()``, no regexes, nothing proportional to the data.

A resolved route carries a *template* (``/api/v2/students/{id}``) that the ledger counts
by, so tests can ask "how many detail calls for students returned 404".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

TOKEN_TEMPLATE = "/api/client/generateAuthenticationToken"
DOCS_TEMPLATE = "/api/v2/documentation"
OPTIONS_TEMPLATE = "/api/v2/lookups/{id}/options"
LEDGER_TEMPLATE = "/_sim/ledger"
MUTATE_TEMPLATE = "/_sim/mutate"
UNMATCHED_TEMPLATE = "(unmatched)"


class Kind(enum.Enum):
    """What a path asks for."""

    TOKEN = "token"
    LIST = "list"
    DETAIL = "detail"
    OPTIONS = "options"
    DOCS = "docs"
    LEDGER = "ledger"  # simulator-only, not counted
    MUTATE = "mutate"  # simulator-only, not counted
    UNMATCHED = "unmatched"


@dataclass(frozen=True, slots=True)
class Route:
    """A resolved path: its kind, ledger template, entity and Id (when the path has them)."""

    kind: Kind
    template: str
    entity: str | None = None
    id: int | None = None

    @property
    def simulator_only(self) -> bool:
        """True for the ``/_sim/`` routes: no auth, no limits, no faults, not counted."""
        return self.kind in (Kind.LEDGER, Kind.MUTATE)


UNMATCHED = Route(Kind.UNMATCHED, UNMATCHED_TEMPLATE)
_TOKEN = Route(Kind.TOKEN, TOKEN_TEMPLATE)
_DOCS = Route(Kind.DOCS, DOCS_TEMPLATE)
_LEDGER = Route(Kind.LEDGER, LEDGER_TEMPLATE)
_MUTATE = Route(Kind.MUTATE, MUTATE_TEMPLATE)


def _as_id(segment: str) -> int | None:
    # ASCII digits only: int() would also take "+5", " 5" and "5_000".
    if segment.isascii() and segment.isdigit() and len(segment) <= 18:
        return int(segment)
    return None


def resolve(path: str, entities: frozenset[str]) -> Route:
    """Resolve ``path`` (any casing, one trailing slash tolerated) against ``entities``."""
    parts = path.lower().strip("/").split("/")
    n = len(parts)
    if n >= 3 and parts[0] == "api" and parts[1] == "v2":
        name = parts[2]
        if n == 3:
            if name == "documentation":
                return _DOCS
            if name in entities:
                return Route(Kind.LIST, f"/api/v2/{name}", name)
        elif name in entities and (id_ := _as_id(parts[3])) is not None:
            if n == 4:
                return Route(Kind.DETAIL, f"/api/v2/{name}/{{id}}", name, id_)
            if n == 5 and name == "lookups" and parts[4] == "options":
                return Route(Kind.OPTIONS, OPTIONS_TEMPLATE, name, id_)
        return UNMATCHED
    if n == 3 and parts[0] == "api" and parts[1] == "client":
        return _TOKEN if parts[2] == "generateauthenticationtoken" else UNMATCHED
    if n == 2 and parts[0] == "_sim":
        if parts[1] == "ledger":
            return _LEDGER
        if parts[1] == "mutate":
            return _MUTATE
    return UNMATCHED
