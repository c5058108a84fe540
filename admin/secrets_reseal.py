"""Passphrase rotation for what the operators' door seals: TOTP seeds and the
cookie-signing key (``enroll ca rotate-passphrase`` calls `reseal` through the
``enroll_reseal_secrets`` hook, in its one transaction)."""

from __future__ import annotations

from enroll.config_values import Secret
from enroll.crypto import sealing
from enroll.store.transaction import Tx

from . import store, users

KEY_CONTEXT = "admin-key:"


def reseal(tx: Tx, old: Secret, new: Secret) -> dict[str, int]:
    seeds = store.totp_seeds(tx)
    for username, blob in seeds:
        fresh = sealing.reseal(blob, old, new, context=users.totp_context(username))
        if fresh != blob and not store.replace_totp_seed(tx, username, blob, fresh):
            raise sealing.UnsealError(f"the second factor of {username!r} changed during "
                                      "the rotation")
    keys = store.all_keys(tx)
    for name, blob in keys:
        fresh = sealing.reseal(blob, old, new, context=KEY_CONTEXT + name)
        if fresh != blob and not store.replace_key(tx, name, blob, fresh):
            raise sealing.UnsealError(f"the console key {name!r} changed during the rotation")
    return {"console TOTP seeds": len(seeds), "console keys": len(keys)}
