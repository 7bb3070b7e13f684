"""The simulator's canned responses, shaped like an ASP.NET Web API behind a gateway.

API errors carry a JSON body ``{"Message": ...}`` (the Web API convention, e.g. its 401
text "Authorization has been denied for this request."). 502 and 503 come from the load
balancer in front, so they are small HTML pages: a client that blindly parses error bodies
as JSON finds out here, not in production.

Data bodies are the bytes the data model rendered; they are passed through, never decoded
or re-encoded.
"""

from __future__ import annotations

import orjson
from aiohttp import web

JSON = "application/json"

UNAUTHORIZED = "Authorization has been denied for this request."
TOO_MANY = "Too many requests"

_GATEWAY_HTML = (
    "<html><head><title>{status} {reason}</title></head>"
    "<body><center><h1>{status} {reason}</h1></center></body></html>"
)


def json_body(body: bytes, status: int = 200) -> web.Response:
    """A JSON response around already-encoded ``body``."""
    return web.Response(body=body, status=status, content_type=JSON)


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An API error: ``{"Message": message}`` with ``status``."""
    return web.Response(
        body=orjson.dumps({"Message": message}), status=status, content_type=JSON, headers=headers
    )


def too_many_requests(retry_after: int | None) -> web.Response:
    """The 429 for a burst, a spent quota or an injected fault: all look the same."""
    headers = None
    if retry_after is not None:
        headers = {"Retry-After": str(retry_after)}
    return json_error(429, TOO_MANY, headers)


def gateway_error(status: int) -> web.Response:
    """A 502/503 as a load balancer sends it: HTML, not JSON."""
    reason = {502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Error")
    page = _GATEWAY_HTML.format(status=status, reason=reason)
    return web.Response(text=page, status=status, content_type="text/html")


def server_error() -> web.Response:
    """A 500 from the API itself."""
    return json_error(500, "An error has occurred.")
