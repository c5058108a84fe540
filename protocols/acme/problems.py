"""The ONE table from enroll's error hierarchy to ACME problem documents (RFC 8555 §6.7,
RFC 7807), plus the ACME-only problems the front-end raises itself.

`AcmeProblem` is an `EnrollError`, so a problem raised anywhere in the front-end is a
client-facing failure like any other; every problem document enroll sends or stores
(the ``error`` of an order, authorization or challenge) is built here, by
`AcmeProblem.document`, `document` or `internal`."""

from __future__ import annotations

from typing import Any

from enroll.errors import (
    ALL_ERRORS,
    BadCSR,
    BadPublicKey,
    Conflict,
    EnrollError,
    MalformedInput,
    MigrationRequired,
    NotFound,
    PolicyDenied,
    RateLimited,
    Unauthorized,
    Unavailable,
)

NS = "urn:ietf:params:acme:error:"

# error class -> (ACME error type, HTTP status). RFC 8555 §6.7 lists the types.
ERROR_TABLE: dict[type[EnrollError], tuple[str, int]] = {
    MalformedInput: ("malformed", 400),
    BadCSR: ("badCSR", 400),
    BadPublicKey: ("badPublicKey", 400),
    Unauthorized: ("unauthorized", 403),
    PolicyDenied: ("rejectedIdentifier", 400),
    # A migration policy refuses this door, not the identifier (which the target door
    # issues): the client is not authorised here any more (docs/migration.md).
    MigrationRequired: ("unauthorized", 403),
    NotFound: ("malformed", 404),
    Conflict: ("malformed", 409),
    RateLimited: ("rateLimited", 429),
    Unavailable: ("serverInternal", 503),
}
assert set(ERROR_TABLE) >= set(ALL_ERRORS)


class AcmeProblem(EnrollError):
    """An ACME problem the front-end answers directly (badNonce, orderNotReady…)."""

    def __init__(self, typ: str, detail: str, status: int = 400, *,
                 headers: dict[str, str] | None = None,
                 subproblems: list[dict[str, Any]] | None = None,
                 identifier: dict[str, str] | None = None,
                 algorithms: list[str] | None = None) -> None:
        super().__init__(detail)
        self.typ = typ
        self.status = status
        self.headers = headers or {}
        self.subproblems = subproblems
        self.identifier = identifier
        self.algorithms = algorithms

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": NS + self.typ, "detail": self.detail,
                               "status": self.status}
        if self.identifier is not None:
            doc["identifier"] = self.identifier
        if self.subproblems:
            doc["subproblems"] = self.subproblems
        if self.algorithms is not None:
            doc["algorithms"] = self.algorithms
        return doc


def document(typ: str, detail: str, status: int = 400, *,
             identifier: dict[str, str] | None = None,
             subproblems: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A problem document to store (an order's, authorization's or challenge's
    ``error``) or to list as a subproblem (RFC 8555 §6.7.1)."""
    return AcmeProblem(typ, detail, status, identifier=identifier,
                       subproblems=subproblems).document()


def from_error(exc: EnrollError) -> AcmeProblem:
    """Map a core error through the table (most specific class first); a problem the
    front-end raised is its own answer."""
    if isinstance(exc, AcmeProblem):
        return exc
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            typ, status = ERROR_TABLE[cls]
            headers = ({"Retry-After": str(exc.retry_after)}
                       if isinstance(exc, RateLimited) else None)
            return AcmeProblem(typ, exc.detail, status, headers=headers)
    return AcmeProblem("serverInternal", "internal error", 500)


def bad_public_key(exc: BadCSR) -> AcmeProblem:
    """An ACCOUNT key the core refuses (weak, blocked: `Door.check_public_key`) is
    ``badPublicKey`` (RFC 8555 §6.7); the same refusal of a CSR key stays ``badCSR``."""
    return AcmeProblem("badPublicKey", exc.detail, 400)


def internal(request_id: str) -> AcmeProblem:
    """An unexpected failure: no detail beyond the request id (logged server-side)."""
    return AcmeProblem("serverInternal", f"internal error (request {request_id})", 500)


def malformed(detail: str) -> AcmeProblem:
    return AcmeProblem("malformed", detail, 400)


def unauthorized(detail: str) -> AcmeProblem:
    return AcmeProblem("unauthorized", detail, 403)


def deactivated() -> AcmeProblem:
    """RFC 8555 §7.3.6: a deactivated account's requests are refused as unauthorized,
    with 401 Unauthorized."""
    return AcmeProblem("unauthorized", "account is deactivated", 401)


SIGNATURE_ALGORITHMS = ["RS256", "ES256", "ES384", "ES512", "EdDSA"]
"""What account keys may sign with (RFC 8555 §6.2 asks for the list in the problem)."""


def bad_signature_algorithm(detail: str) -> AcmeProblem:
    """RFC 8555 §6.2: the problem MUST carry the supported ``algorithms``."""
    return AcmeProblem("badSignatureAlgorithm", detail, 400,
                       algorithms=list(SIGNATURE_ALGORITHMS))


def not_found(detail: str = "no such resource") -> AcmeProblem:
    return AcmeProblem("malformed", detail, 404)
