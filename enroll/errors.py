"""The one error hierarchy of enroll.

Every failure a client can cause is an `EnrollError` subclass carrying a client-safe
`detail`. Each protocol maps these classes to its wire format in a single table
(`protocols/acme/problems.py`, `protocols/scep/failinfo.py`, `protocols/est/statuses.py`);
anything that is not an `EnrollError` is an internal error and reaches a client only as a
generic message with a request id.
"""

from __future__ import annotations


class EnrollError(Exception):
    """Base of every client-facing failure. `detail` is safe to show to the client."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedInput(EnrollError):
    """The request could not be parsed (bad encoding, bad ASN.1, bad JSON, too large)."""


class BadCSR(EnrollError):
    """The CSR parsed but is unacceptable: bad signature, weak key, names or usages the
    profile does not allow, a request for CA:TRUE."""


class CSRSignatureInvalid(BadCSR):
    """The CSR's self-signature does not verify.

    A refinement of `BadCSR` (not in `ALL_ERRORS`): tables map it as `BadCSR` unless the
    wire format has a better answer (SCEP: badMessageCheck)."""


class CSRAlgorithmUnsupported(BadCSR):
    """The CSR is signed with an algorithm or key we cannot verify.

    A refinement of `BadCSR` (not in `ALL_ERRORS`); SCEP answers badAlg."""


class BadPublicKey(BadCSR):
    """The CSR's public key is invalid (an RSA exponent of 1, an EC point off its curve)
    or of a kind enroll never certifies (DSA, X25519, an unknown curve or algorithm).

    A refinement of `BadCSR` (not in `ALL_ERRORS`); ACME answers badPublicKey, SCEP
    badAlg."""


class Unauthorized(EnrollError):
    """The requester is not authenticated or not allowed to do this."""


class PolicyDenied(EnrollError):
    """A policy rule or plugin voted deny, or an operator rejected the request."""


class MigrationRequired(PolicyDenied):
    """The profile's migration policy refuses this door after its date
    (`enroll.migration_rules`); `detail` is the operator's message telling the device
    where to renew. `to` (and `endpoint`) name the door to use.

    A refinement of `PolicyDenied` (not in `ALL_ERRORS`): SCEP FAILURE badRequest with the
    message in failInfoText, EST 403 with it as the body, ACME ``unauthorized`` (403)."""

    def __init__(self, detail: str, *, to: str, endpoint: str | None = None) -> None:
        super().__init__(detail)
        self.to = to
        self.endpoint = endpoint


class NotFound(EnrollError):
    """The named object does not exist (or is not visible to this requester)."""


class Conflict(EnrollError):
    """The request conflicts with stored state (reused transaction id with another key,
    wrong state for the operation)."""


class RateLimited(EnrollError):
    """Too many requests; try later. `retry_after` is in seconds; `limit` names the limit
    (`enroll.rate_limits`) for the log and the audit trail."""

    def __init__(self, detail: str, *, retry_after: int = 60, limit: str = "") -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.limit = limit


class Unavailable(EnrollError):
    """A dependency (CA backend, database, webhook) is unavailable right now."""


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached or cannot write right now: a server restart, a
    network cut, a full disk, a lock that did not come free. Raised by the store
    (`enroll.store.transaction`) in place of the driver's error, after the transaction
    was rolled back; the client's retry is safe.

    A refinement of `Unavailable` (not in `ALL_ERRORS`): tables map it as `Unavailable`
    (EST 503 + Retry-After, ACME serverInternal 503, SCEP FAILURE)."""


class ConfigError(Exception):
    """Configuration is invalid. Raised at start-up, never at request time.

    `key` is the dotted path of the offending setting (``profiles.iot.validity``).
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class NotInitialised(Exception):  # noqa: N818 - reads as a state, like ConfigError
    """The database has no enroll schema, an older one, or lacks a configured CA, and
    this command does not create them (only ``enroll init`` / ``enroll serve`` do)."""


ALL_ERRORS: tuple[type[EnrollError], ...] = (
    MalformedInput,
    BadCSR,
    Unauthorized,
    PolicyDenied,
    NotFound,
    Conflict,
    RateLimited,
    Unavailable,
)
"""Every concrete error class; each protocol's mapping table must cover all of them."""
