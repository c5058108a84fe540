"""Sealing with the CA passphrase (enroll.crypto.sealing): one format for CA keys, SCEP RA
keys and EST's kept keys, and the blobs written before it still open."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from enroll.config import Secret
from enroll.context import AppContext
from enroll.crypto import sealing
from enroll.crypto.sealing import UnsealError, is_sealed, seal, seal_key, unseal, unseal_key
from enroll.model import Issued
from enroll.testing import TEST_PASSPHRASE, make_csr, request

PASS = Secret(TEST_PASSPHRASE)


def test_sealed_data_opens_with_the_same_passphrase_and_context() -> None:
    blob = seal(b"secret bytes", PASS, context="test/a")
    assert blob.startswith(sealing.MAGIC) and is_sealed(blob)
    assert b"secret bytes" not in blob
    assert unseal(blob, PASS, context="test/a") == b"secret bytes"
    assert seal(b"secret bytes", PASS, context="test/a") != blob  # fresh nonce each time


@pytest.mark.parametrize("change", ["passphrase", "context", "tamper", "truncate", "garbage"])
def test_anything_else_does_not_open(change: str) -> None:
    blob = seal(b"secret bytes", PASS, context="localca/ca-key/root")
    passphrase, context = PASS, "localca/ca-key/root"
    if change == "passphrase":
        passphrase = Secret("another passphrase")
    elif change == "context":
        context = "localca/ca-key/issuing"  # a blob moved to another row
    elif change == "tamper":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    elif change == "truncate":
        blob = blob[:len(sealing.MAGIC) + 20]
    else:
        blob = b"\x00" * 64
    with pytest.raises(UnsealError):
        unseal(blob, passphrase, context=context)


def test_a_blob_sealed_by_another_process_opens(monkeypatch: Any) -> None:
    # Each process seals under its own random salt; the salt travels in the blob.
    monkeypatch.setattr(sealing, "_PROCESS_SALT", b"\x01" * 16)
    blob = seal(b"from worker 1", PASS, context="test/b")
    monkeypatch.setattr(sealing, "_PROCESS_SALT", b"\x02" * 16)
    assert unseal(blob, PASS, context="test/b") == b"from worker 1"
    assert sealing.inspect(seal(b"x", PASS, context="test/b")).salt == b"\x02" * 16


@pytest.mark.parametrize("make", [
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: rsa.generate_private_key(65537, 2048),
    ed25519.Ed25519PrivateKey.generate,
])
def test_private_keys_round_trip_as_pkcs8(make: Any) -> None:
    key = make()
    blob = seal_key(key, PASS, context="test/key")
    assert unseal_key(blob, PASS, context="test/key").public_key() == key.public_key()


def test_a_key_sealed_by_the_pre_v1_local_ca_code_still_opens(
        vector: Callable[[str], bytes]) -> None:
    # Made by plugins/localca/keystore.py seal() as of commit 937c3c1 (vectors README);
    # the SCEP RA sealed its key with the same code.
    blob = vector("sealed_pre_v1_localca.pem")
    expected = serialization.load_pem_public_key(vector("sealed_pre_v1.pub.pem"))
    assert not is_sealed(blob)
    key = unseal_key(blob, PASS, context="localca/ca-key/any")
    assert key.public_key() == expected
    with pytest.raises(UnsealError):
        unseal_key(blob, Secret("another passphrase"), context="localca/ca-key/any")


def _pre_v1(key: Any) -> bytes:
    """What the local CA and the SCEP RA stored before enroll.crypto.sealing."""
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(TEST_PASSPHRASE.encode()))


def test_a_database_with_pre_v1_ca_keys_still_starts_and_signs(
        build: Callable[..., AppContext]) -> None:
    first = build()
    for name in ("root", "issuing"):
        backend: Any = first.cas.get(name)
        with first.db.write() as tx:
            tx.run("UPDATE cas SET key_blob = ? WHERE name = ?", (_pre_v1(backend._key), name))
    first.db.dispose()
    again = build()
    outcome = again.authority.submit(request(make_csr()))
    assert isinstance(outcome, Issued)
    outcome.certificate.verify_directly_issued_by(again.cas.get("issuing").certificate)
