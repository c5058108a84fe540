"""RFC 9457 problem documents: the API's one error table.

Every refusal is a `Problem` (raised by the API's own checks) or an
`enroll.errors.EnrollError` from the core or `admin.operations`, turned into a problem by
`from_error`, the only place that maps errors to statuses. A problem's ``type`` is a tag
URI (RFC 4151) naming the kind (``tag:enroll,2026:problem/not-found``): stable for a
client to switch on, not meant to be fetched. Anything else a handler raises is a bug:
logged with its traceback, answered as a bare 500 without detail.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Mapping

from starlette.responses import JSONResponse

from enroll.errors import (
    BadCSR,
    ConfigError,
    Conflict,
    EnrollError,
    MalformedInput,
    NotFound,
    PolicyDenied,
    RateLimited,
    Unauthorized,
    Unavailable,
)

from ..principal import Forbidden

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "tag:enroll,2026:problem/"
MAX_DETAIL = 512
log = logging.getLogger("enroll.admin.api")

KINDS: dict[int, str] = {
    400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 406: "not-acceptable", 409: "conflict",
    413: "body-too-large", 415: "unsupported-media-type", 429: "rate-limited",
    500: "internal", 503: "unavailable",
}


class Problem(Exception):
    """A refusal with its HTTP status; `kind` defaults to the status's (`KINDS`)."""

    def __init__(self, status: int, detail: str, *, kind: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail[:MAX_DETAIL]
        self.kind = kind or KINDS.get(status, "error")
        self.headers = dict(headers or {})

    def as_json(self) -> dict[str, object]:
        return {"type": TYPE_PREFIX + self.kind, "title": http.HTTPStatus(self.status).phrase,
                "status": self.status, "detail": self.detail}

    def response(self) -> JSONResponse:
        return JSONResponse(self.as_json(), status_code=self.status, media_type=MEDIA_TYPE,
                            headers={"Cache-Control": "no-store", **self.headers})


def unauthenticated(detail: str = "an API token is required "
                                  "(Authorization: Bearer enr.<id>.<secret>)",
                    *, presented: bool = False) -> Problem:
    """401 with the RFC 6750 challenge; ``error="invalid_token"`` when a credential was
    presented and did not authenticate."""
    challenge = 'Bearer realm="enroll-admin"' + (', error="invalid_token"' if presented else "")
    return Problem(401, detail, headers={"WWW-Authenticate": challenge})


_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (Forbidden, 403), (Unauthorized, 403), (NotFound, 404), (Conflict, 409),
    (RateLimited, 429), (Unavailable, 503), (PolicyDenied, 403), (BadCSR, 400),
    (MalformedInput, 400), (EnrollError, 400),
)


def from_error(exc: BaseException) -> Problem:
    """The problem an error is answered with; a bare 500 for anything not ours. The
    caller is authenticated by then, so the core's `Unauthorized` (the requester
    approving its own request) is a 403, like a role the route does not allow."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ConfigError):  # a credential command's input (endpoint label, pattern)
        return Problem(400, str(exc))
    for kind, status in _TABLE:
        if isinstance(exc, kind):
            headers = ({"Retry-After": str(exc.retry_after)}
                       if isinstance(exc, RateLimited) else None)
            detail = exc.detail if isinstance(exc, EnrollError) else str(exc)
            return Problem(status, detail, headers=headers)
    log.error("admin api: internal error", exc_info=exc)
    return Problem(500, "internal error")
