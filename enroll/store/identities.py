"""The inventory's rows (table ``identities``): one per identity, kept in the transaction
that issues or revokes one of its certificates, so the inventory is never behind the
certificates and costs one indexed read per query whatever the store's size."""

from __future__ import annotations

import datetime as dt
from typing import Any

from enroll.store.schema import certificates
from enroll.store.transaction import Tx


def fold(identity: str) -> str:
    """The identity's value (after ``kind:``) in lower case: what a search matches."""
    return identity.partition(":")[2].lower() or identity.lower()


_COLUMNS = ("identity, name, serial, status, protocol, endpoint, profile, ca, not_before, "
            "not_after, requester, device_id, first_issued, last_issued, certificates, "
            "migrated_from")


ENGINE_REQUESTER = "system:"
"""Requesters of the engine's own certificates (the HTTPS listener's, the SCEP RA's):
they are not the fleet's, so the inventory has no row for them."""


def record_issued(tx: Tx, *, identity: str, serial: str, protocol: str, endpoint: str,
                  profile: str, ca: str, not_before: dt.datetime, not_after: dt.datetime,
                  requester: str, device_id: str | None, now: dt.datetime) -> None:
    """A new certificate is the identity's current one; the count grows by one and a
    change of protocol is remembered in ``migrated_from``. The engine's own certificates
    are not recorded (`ENGINE_REQUESTER`)."""
    if requester.startswith(ENGINE_REQUESTER):
        return
    tx.run(
        f"INSERT INTO identities ({_COLUMNS}) VALUES "  # noqa: S608 - fixed column list
        "(?, ?, ?, 'valid', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, NULL) "
        "ON CONFLICT (identity) DO UPDATE SET serial = excluded.serial, status = 'valid', "
        "migrated_from = CASE WHEN identities.protocol <> excluded.protocol "
        "THEN identities.protocol ELSE identities.migrated_from END, "
        "protocol = excluded.protocol, endpoint = excluded.endpoint, "
        "profile = excluded.profile, ca = excluded.ca, not_before = excluded.not_before, "
        "not_after = excluded.not_after, requester = excluded.requester, "
        "device_id = COALESCE(excluded.device_id, identities.device_id), "
        "last_issued = excluded.last_issued, certificates = identities.certificates + 1",
        (identity, fold(identity), serial, protocol, endpoint, profile, ca,
         tx.when(not_before), tx.when(not_after), requester, device_id, tx.when(now),
         tx.when(now)))


def record_revoked(tx: Tx, identity: str | None, serial: str, now: dt.datetime) -> None:
    """After `serial` was revoked: if it was its identity's current certificate, the
    newest other live one becomes current, or the identity is ``revoked``."""
    if identity is None:
        return
    current = tx.scalar("SELECT serial FROM identities WHERE identity = ?", (identity,))
    if current != serial:
        return
    row: Any = tx.one(
        "SELECT serial, protocol, endpoint, profile, ca, not_before, not_after, requester, "
        "device_id FROM certificates WHERE identity = ? AND status = 'valid' "
        "AND not_after > ? ORDER BY created_at DESC LIMIT 1", (identity, tx.when(now)),
        certificates)
    if row is None:
        tx.run("UPDATE identities SET status = 'revoked' WHERE identity = ?", (identity,))
        return
    tx.run("UPDATE identities SET serial = ?, status = 'valid', protocol = ?, endpoint = ?, "
           "profile = ?, ca = ?, not_before = ?, not_after = ?, requester = ?, "
           "device_id = COALESCE(?, device_id) WHERE identity = ?",
           (row["serial"], row["protocol"], row["endpoint"] or "", row["profile"], row["ca"],
            tx.when(row["not_before"]), tx.when(row["not_after"]), row["requester"],
            row["device_id"], identity))
