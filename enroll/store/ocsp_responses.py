"""Repository functions over `ocsp_responses`: the signed OCSP response per (CA, serial,
CertID hash), shared by every worker (enroll.ocsp)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from enroll.store.schema import certificates, ocsp_responses
from enroll.store.transaction import Tx

GOOD = "good"
REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class CertificateState:
    """What an OCSP answer says about a certificate, read without decoding its DER."""

    ca: str
    status: str
    """``good`` or ``revoked``."""
    revoked_at: dt.datetime | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: str
    this_update: dt.datetime
    next_update: dt.datetime
    der: bytes


def certificate_state(tx: Tx, serial_hex: str) -> CertificateState | None:
    row = tx.one("SELECT ca, status, revoked_at, revocation_reason FROM certificates "
                 "WHERE serial = ?", (serial_hex,), certificates)
    if row is None:
        return None
    revoked = row["status"] == "revoked"
    return CertificateState(row["ca"], REVOKED if revoked else GOOD,
                            row["revoked_at"] if revoked else None,
                            row["revocation_reason"] if revoked else None)


def get(tx: Tx, ca: str, serial_hex: str, hash_alg: str) -> StoredResponse | None:
    row = tx.one("SELECT status, this_update, next_update, der FROM ocsp_responses "
                 "WHERE ca = ? AND serial = ? AND hash_alg = ?", (ca, serial_hex, hash_alg),
                 ocsp_responses)
    if row is None:
        return None
    return StoredResponse(row["status"], row["this_update"], row["next_update"],
                          bytes(row["der"]))


def hash_algorithms(tx: Tx, ca: str, serial_hex: str) -> list[str]:
    """The CertID hashes a response is stored for (re-signed on revocation)."""
    rows = tx.all("SELECT hash_alg FROM ocsp_responses WHERE ca = ? AND serial = ?",
                  (ca, serial_hex))
    return [r["hash_alg"] for r in rows]


def put(tx: Tx, ca: str, serial_hex: str, hash_alg: str, response: StoredResponse) -> None:
    """Store `response` (one upsert, race-safe across workers), replacing the stored one
    unless that says revoked and this one good: a response signed before a revocation
    whose write lands after it never replaces the revoked one."""
    tx.run("INSERT INTO ocsp_responses (ca, serial, hash_alg, status, this_update, "
           "next_update, der) VALUES (?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (ca, serial, hash_alg) DO UPDATE SET status = excluded.status, "
           "this_update = excluded.this_update, next_update = excluded.next_update, "
           "der = excluded.der WHERE ocsp_responses.status = excluded.status "
           "OR ocsp_responses.status = ?",
           (ca, serial_hex, hash_alg, response.status, tx.when(response.this_update),
            tx.when(response.next_update), response.der, GOOD))
