"""The simulator's HTTP responses: the response value every route returns,
the API's content types and error bodies, and ``@odata.nextLink`` building.

Shared by the Defender routes (:mod:`mde_simulator.server`) and the Graph
routes (:mod:`mde_simulator.graph`), so that neither imports the other's
module back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

from .store import dumps

_API_CONTENT_TYPE = (
    "application/json; odata.metadata=minimal; odata.streaming=true; "
    "IEEE754Compatible=false; charset=utf-8"
)
_JSON = "application/json; charset=utf-8"

_ERROR_CODES = {
    400: ("BadRequest", "The request is invalid."),
    401: ("Unauthorized", "Authorization has been denied for this request."),
    403: ("Forbidden", "The application is not allowed to perform this operation."),
    404: ("NotFound", "The requested resource was not found."),
    405: ("MethodNotAllowed", "The requested HTTP method is not allowed for this resource."),
    408: ("RequestTimeout", "The request timed out."),
    409: ("Conflict", "The request conflicts with the current state of the resource."),
    429: ("TooManyRequests", "API calls quota exceeded! Maximum allowed calls are reached."),
    500: ("InternalServerError", "An unexpected error occurred. Please retry the operation."),
    502: ("BadGateway", "The gateway received an invalid response from the upstream server."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The upstream server did not respond in time."),
}


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = _JSON
    client_id: str | None = None


def _api_error(status: int, code: str | None = None, message: str | None = None) -> _Response:
    default_code, default_message = _ERROR_CODES.get(status, ("Error", "The request failed."))
    body = {
        "error": {
            "code": code or default_code,
            "message": message or default_message,
            "target": str(uuid.uuid4()),
        }
    }
    return _Response(status, dumps(body))


def _next_link(base: str, path: str, query: dict[str, str], skip: int) -> str:
    return _link(base, path, {**query, "$skip": str(skip)})


def _link(base: str, path: str, params: dict[str, str]) -> str:
    encoded = "&".join(
        f"{quote(k, safe='$')}={quote(v, safe=chr(39) + '():,')}" for k, v in params.items()
    )
    return f"{base}{path}?{encoded}" if encoded else f"{base}{path}"


__all__ = ["_API_CONTENT_TYPE", "_JSON", "_Response", "_api_error", "_link", "_next_link"]
