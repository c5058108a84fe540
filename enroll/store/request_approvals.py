"""The approvals of a request with their times (`enroll.request_trail`); recording
them is `enroll.store.queries.add_approval`."""

from __future__ import annotations

import datetime as dt

from enroll.store.schema import request_approvals
from enroll.store.transaction import Tx


def approvals_of(tx: Tx, request_id: str) -> list[tuple[str, dt.datetime]]:
    """(approver, when) of each distinct approver of a request, first first."""
    rows = tx.all("SELECT approver, at FROM request_approvals WHERE request_id = ? "
                  "ORDER BY at, approver", (request_id,), request_approvals)
    return [(str(r["approver"]), r["at"]) for r in rows]
