"""Certificates read a page at a time (keyset on the serial), for reports that walk a
whole profile without holding it in memory (`enroll.profile_drift`)."""

# ruff: noqa: S608 - the SQL interpolates only constant column lists and an int() limit.
from __future__ import annotations

import datetime as dt
from typing import Any

from enroll.model import CertificateRecord, CertificateStatus
from enroll.store.queries import _CERTIFICATE, CA_PROTOCOL, _certificate
from enroll.store.schema import certificates
from enroll.store.transaction import Tx


def of_profile(tx: Tx, profile: str, *, after: str | None, limit: int,
               live_at: dt.datetime | None = None) -> list[CertificateRecord]:
    """Up to `limit` client certificates of `profile` whose serial sorts after `after`
    (None: from the first), in serial order; with `live_at` only those valid and not
    expired then."""
    conditions = ["profile = ?", f"protocol != '{CA_PROTOCOL}'"]
    params: list[Any] = [profile]
    if live_at is not None:
        conditions.append("status = ? AND not_after > ?")
        params += [CertificateStatus.VALID.value, tx.when(live_at)]
    if after is not None:
        conditions.append("serial > ?")
        params.append(after)
    rows = tx.all(f"SELECT {_CERTIFICATE} FROM certificates WHERE "
                  f"{' AND '.join(conditions)} ORDER BY serial LIMIT {int(limit)}",
                  params, certificates)
    return [_certificate(r) for r in rows]
