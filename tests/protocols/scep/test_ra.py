"""The RA key at rest: sealed with the CA passphrase, and RA keys stored before the shared
sealing format still open."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from enroll.protocols.scep import ra, settings, store

from enroll.crypto.sealing import is_sealed, unseal_key
from enroll.testing import TEST_PASSPHRASE


def test_an_ra_key_stored_by_the_pre_v1_code_still_opens(scep: Any) -> None:
    ctx = scep.ctx
    endpoint = settings.parse(ctx.config)[0]
    with ctx.db.read() as tx:
        stored = store.get_ra(tx, endpoint.label, endpoint.ca)
    assert stored is not None and is_sealed(stored.key_blob)
    key = unseal_key(stored.key_blob, ctx.config.ca_passphrase,
                     context=f"scep/ra-key/{endpoint.label}/{endpoint.ca}")
    # What protocols/scep/ra.py _seal stored before enroll.crypto.sealing.
    old_blob = key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(TEST_PASSPHRASE.encode()))
    with ctx.db.write() as tx:
        tx.run("UPDATE scep_ra_keys SET key_blob = ? WHERE endpoint = ?",
               (old_blob, endpoint.label))
    again = ra.load_or_create(ctx.frontend, endpoint, endpoint.ca)
    assert again.key.private_numbers() == key.private_numbers()  # type: ignore[union-attr]
    assert again.certificate.public_bytes(serialization.Encoding.PEM).decode() == \
        stored.certificate_pem  # reused, not reissued
