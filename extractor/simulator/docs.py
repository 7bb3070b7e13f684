"""The ``/api/v2/documentation`` page: the endpoints this simulated school serves.

The real page is the school's ASP.NET help page; this one is a small HTML summary
rendered once at startup from the entity definitions, so it can never drift from what the
simulator actually serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from extractor.simulator.entities import BY_NAME, Entity
from extractor.simulator.query import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


def _params(entity: Entity) -> str:
    params = [
        f"PageSize (default {DEFAULT_PAGE_SIZE}, max {MAX_PAGE_SIZE})",
        "PageNumber (1-based)",
    ]
    if entity.has_modify_date:
        params += ["ModifyFromDate (UTC, inclusive)", "ModifyToDate (UTC, inclusive)"]
    if entity.name == "students":
        params.append("year (graduation year)")
    if entity.name == "notes":
        params.append("EntityTypeId (2201 company notes, 2301 contact notes)")
    return ", ".join(params)


def _section(entity: Entity) -> str:
    list_fields = ", ".join(f.name for f in entity.list_fields)
    detail_only = ", ".join(f.name for f in entity.fields if not f.in_list) or "(none)"
    name = escape(entity.name)
    extra = ""
    if entity.name == "lookups":
        extra = "<li>GET /api/v2/lookups/{id}/options: a bare array of {Id, Name}</li>"
    return (
        f"<h2>{name}</h2><ul>"
        f"<li>GET /api/v2/{name}: paged list; parameters: {escape(_params(entity))}</li>"
        f"<li>GET /api/v2/{name}/{{id}}: one record with every field</li>{extra}"
        f"<li>List fields: {escape(list_fields)}</li>"
        f"<li>Detail-only fields: {escape(detail_only)}</li></ul>"
    )


def render_documentation(
    entities: Iterable[str], *, token_lifetime: float, max_concurrency: int, daily_limit: int
) -> bytes:
    """The documentation page for ``entities`` (names from the data model), as HTML bytes.

    The limits and token lifetime quoted are this simulator's configured ones.
    """
    sections = "".join(_section(BY_NAME[name]) for name in entities if name in BY_NAME)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<title>12Twenty API v2 (simulator)</title></head><body>"
        "<h1>12Twenty API v2 (offline simulator)</h1>"
        "<p>GET /api/client/generateAuthenticationToken?key=API_KEY returns a token; send it "
        "as <code>Authorization: Bearer TOKEN</code> on every other call. Tokens last "
        f"{token_lifetime / 3600:g} hours. Limits: {max_concurrency} concurrent requests and "
        f"{daily_limit:,} requests per UTC day per school; past either, 429 Too many "
        "requests. Date/times are UTC.</p>"
        f"{sections}</body></html>"
    )
    return page.encode("utf-8")
