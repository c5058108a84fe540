"""The one table from enroll's errors to EST answers (RFC 7030 §4.2.3: any status other
than 200/202 is an error, with an optional human-readable ``text/plain`` body).

A 401 carries ``WWW-Authenticate`` and an EMPTY body: some clients (Bouncy Castle's EST
client among them) fail on a 401 that has one. Anything that is not an `EnrollError`
is an internal error: logged server-side with the request id, answered 500 with that id
and nothing else (no stack trace, SQL or input ever reaches the client).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import Response

from enroll import errors

log = logging.getLogger("enroll.est")
REALM = 'Basic realm="enroll-est", charset="UTF-8"'
RETRY_SECONDS = "30"

STATUS: dict[type[errors.EnrollError], int] = {
    errors.MalformedInput: 400,
    errors.BadCSR: 400,
    errors.Unauthorized: 401,
    errors.PolicyDenied: 403,  # and MigrationRequired: the body says where to renew
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}


def text(body: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(body.rstrip("\n") + "\n", status_code=status, media_type="text/plain",
                    headers=headers)


def unauthorized() -> Response:
    """RFC 7030 §3.2.3 / RFC 7235 §3.1: challenge, empty body."""
    return Response(b"", status_code=401, headers={"www-authenticate": REALM})


def status_for(exc: errors.EnrollError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_response(exc: BaseException, request_id: Any = None) -> Response:
    """The EST answer for any exception raised while serving a request."""
    if isinstance(exc, errors.EnrollError):
        status = status_for(exc)
        if status == 401:
            return unauthorized()
        retry = exc.retry_after if isinstance(exc, errors.RateLimited) else RETRY_SECONDS
        headers = {"retry-after": str(retry)} if status in (429, 503) else None
        return text(exc.detail[:300], status, headers)
    log.error("internal error in EST request %s", request_id, exc_info=exc)
    return text(f"internal error (request id {request_id})", 500)
