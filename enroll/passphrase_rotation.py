"""Re-sealing every secret in the store under a new CA passphrase, all or nothing
(``enroll ca rotate-passphrase``).

The core does not know where the secrets live: CA keys belong to their backend, SCEP RA
keys, EST kept keys and ACME EAB keys to their protocol. So the core opens one write
transaction and asks every plugin, through the `enroll_reseal_secrets` hook, to re-seal
its own rows inside it; the first blob that does not open with the current passphrase
raises `UnsealError` and rolls everything back. Blobs in older formats (v1, the PBKDF2
PEM, EST's pre-v1 boxes, EAB keys derived from a database secret) come out in the
current one. An audit event (``ca.passphrase_rotated``, with the counts) is written in
the same transaction.
"""

from __future__ import annotations

import hmac

import pluggy

from enroll.clock import Clock
from enroll.config_values import Secret
from enroll.errors import ConfigError
from enroll.store import queries
from enroll.store.db import Database

MIN_LENGTH = 8
"""The shortest passphrase the configuration accepts (`enroll.config`)."""


def check_new(old: Secret, new: Secret) -> None:
    """Refuse a new passphrase the configuration would refuse, or the current one."""
    if len(new.reveal()) < MIN_LENGTH:
        raise ConfigError("new passphrase", f"must be at least {MIN_LENGTH} characters")
    if hmac.compare_digest(old.reveal().encode(), new.reveal().encode()):
        raise ConfigError("new passphrase", "is the current passphrase")


def rotate(db: Database, pm: pluggy.PluginManager, clock: Clock, old: Secret, new: Secret,
           *, actor: str = "operator") -> dict[str, int]:
    """Re-seal every plugin's secrets from `old` to `new` in one transaction; returns
    how many of each kind. Raises `UnsealError` (nothing changed) if one does not open
    with `old`."""
    check_new(old, new)
    counts: dict[str, int] = {}
    with db.write() as tx:
        for answer in pm.hook.enroll_reseal_secrets(tx=tx, old=old, new=new):
            for kind, n in (answer or {}).items():
                counts[kind] = counts.get(kind, 0) + int(n)
        queries.add_audit(tx, at=clock.now(), type="ca.passphrase_rotated", actor=actor,
                          details={"resealed": counts})
    return counts
