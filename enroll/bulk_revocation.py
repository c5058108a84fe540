"""Which certificates a revocation by identity, requester or device takes.

``enroll certs revoke --device-id X`` and an MDM's ``device.retired`` event
(`enroll.device_events`) revoke every live certificate of one subject at once, whichever
protocol issued it: the selection is read inside the revoking transaction
(`Authority.revoke_selected`), so a certificate issued meanwhile is either in it or
issued after it, and a certificate revoked meanwhile is skipped (the conditional UPDATE
of `queries.revoke_certificate`). Every selector column is indexed.

One call revokes at most `MAX_REVOKED` certificates: a selection larger than that is a
mistake more often than a fleet (``--requester`` of an MDM's shared SCEP account), and
it is refused whole, so nothing is revoked half-way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from enroll.errors import Conflict, MalformedInput
from enroll.model import CertificateRecord
from enroll.store import queries
from enroll.store.transaction import Tx

MAX_REVOKED = 10_000
MAX_VALUE = 600
"""The longest selector value (the ``identity`` column's width)."""


@dataclass(frozen=True, slots=True)
class Selector:
    """One column of `queries.LIVE_SELECTORS` and the value it must have."""

    column: str
    value: str

    def __post_init__(self) -> None:
        if self.column not in queries.LIVE_SELECTORS:
            raise MalformedInput(f"cannot select certificates by {self.column!r}")
        if not self.value or len(self.value) > MAX_VALUE:
            raise MalformedInput(f"{self.column} must be 1 to {MAX_VALUE} characters")

    def as_detail(self) -> dict[str, str]:
        return {self.column: self.value}


def one_selector(*, identity: str | None = None, requester: str | None = None,
                 device_id: str | None = None) -> Selector:
    """The one selector given; `MalformedInput` for none or several."""
    given = [Selector(column, value) for column, value in
             (("identity", identity), ("requester", requester), ("device_id", device_id))
             if value is not None]
    if len(given) != 1:
        raise MalformedInput("give exactly one of identity, requester or device id")
    return given[0]


def select(tx: Tx, selectors: tuple[Selector, ...], now: dt.datetime,
           limit: int | None = None) -> list[CertificateRecord]:
    """The live certificates any of `selectors` matches (each once, oldest first);
    `Conflict` when there are more than `limit` (default `MAX_REVOKED`)."""
    limit = MAX_REVOKED if limit is None else limit
    found: dict[str, CertificateRecord] = {}
    for selector in selectors:
        for record in queries.live_certificates_by(tx, selector.column, selector.value,
                                                   now, limit + 1):
            found.setdefault(record.serial_hex, record)
        if len(found) > limit:
            raise Conflict(f"more than {limit} live certificates match "
                           f"{_describe(selectors)}: refused, nothing revoked (revoke "
                           "by a narrower selector)")
    return sorted(found.values(), key=lambda r: (r.not_before, r.serial_hex))


def _describe(selectors: tuple[Selector, ...]) -> str:
    return " or ".join(f"{s.column}={s.value!r}" for s in selectors)
