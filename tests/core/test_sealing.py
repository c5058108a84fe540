"""Sealing with the CA passphrase (enroll.crypto.sealing): one format for CA keys, SCEP RA
keys, EST's kept keys and EAB keys, its scrypt parameters stored in the blob, and the
blobs written before it (v1, the PBKDF2 PEM) still open."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

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


# -- format v2: the KDF parameters travel with the blob --------------------------------

def test_new_blobs_are_v2_and_say_which_scrypt_parameters_sealed_them() -> None:
    blob = seal(b"secret bytes", PASS, context="test/v2")
    header = sealing.inspect(blob)
    assert blob.startswith(b"ENRSEAL2")
    assert (header.version, header.kdf, header.params) == (2, "scrypt", sealing.DEFAULT_PARAMS)
    assert sealing.DEFAULT_PARAMS == sealing.ScryptParams(log2_n=15, r=8, p=1)
    assert blob[8:11] == bytes((15, 8, 1)) and header.salt == blob[11:27]
    assert sealing.is_current(blob)


def test_the_stored_parameters_are_the_ones_used_to_open() -> None:
    params = sealing.ScryptParams(log2_n=12, r=4, p=2)
    blob = seal(b"secret bytes", PASS, context="test/params", params=params)
    assert sealing.inspect(blob).params == params and not sealing.is_current(blob)
    assert unseal(blob, PASS, context="test/params") == b"secret bytes"
    # Independently: scrypt with exactly those parameters and the header as AAD.
    salt, nonce = blob[11:27], blob[27:39]
    key = Scrypt(salt=salt, length=32, n=1 << 12, r=4, p=2).derive(TEST_PASSPHRASE.encode())
    assert AESGCM(key).decrypt(nonce, blob[39:], blob[:27] + b"test/params") == b"secret bytes"
    # The header is authenticated: other parameters derive another key and fail.
    edited = blob[:8] + bytes((13, 4, 2)) + blob[11:]
    with pytest.raises(UnsealError, match="wrong passphrase"):
        unseal(edited, PASS, context="test/params")


@pytest.mark.parametrize("params", [(30, 8, 1), (15, 8, 0), (9, 8, 1), (20, 32, 1)])
def test_a_header_asking_for_absurd_parameters_is_refused_without_running_them(
        params: tuple[int, int, int]) -> None:
    blob = seal(b"x", PASS, context="test/absurd")
    with pytest.raises(UnsealError, match="unsupported scrypt parameters"):
        unseal(blob[:8] + bytes(params) + blob[11:], PASS, context="test/absurd")


def test_a_v1_blob_still_opens_and_a_wrong_passphrase_is_one_error(
        vector: Callable[[str], bytes]) -> None:
    # Sealed by enroll/crypto/sealing.py as of commit 3612607 (vectors README).
    blob = vector("sealed_v1_localca_root.bin")
    header = sealing.inspect(blob)
    assert (header.version, header.params) == (1, sealing.V1_PARAMS) and is_sealed(blob)
    key = unseal_key(blob, PASS, context="localca/ca-key/root")
    assert key.public_key() == serialization.load_pem_public_key(vector("sealed_v1.pub.pem"))
    for passphrase, context in ((Secret("another passphrase"), "localca/ca-key/root"),
                                (PASS, "localca/ca-key/issuing")):
        with pytest.raises(UnsealError, match="wrong passphrase or context"):
            unseal(blob, passphrase, context=context)


def test_the_pre_v1_pem_is_pbkdf2_and_reads_as_version_0(vector: Callable[[str], bytes]) -> None:
    header = sealing.inspect(vector("sealed_pre_v1_localca.pem"))
    assert (header.version, header.kdf, header.params) == (0, "pbkdf2-sha256", None)


def test_a_process_derives_one_key_for_any_number_of_seals() -> None:
    # EST keeps a server-generated key per request: only the first seal pays scrypt.
    sealing._kek.cache_clear()
    blobs = [seal(b"key %d" % i, PASS, context=f"est/server-key/r{i}") for i in range(50)]
    assert sealing._kek.cache_info().misses == 1
    assert [unseal(b, PASS, context=f"est/server-key/r{i}") for i, b in enumerate(blobs)] \
        == [b"key %d" % i for i in range(50)]
    assert sealing._kek.cache_info().misses == 1


# -- reseal: what rotation does to each blob -------------------------------------------

NEW = Secret("the new passphrase")


@pytest.mark.parametrize("name", ["sealed_v1_localca_root.bin", "sealed_pre_v1_localca.pem"])
def test_reseal_moves_older_formats_to_v2_under_the_new_passphrase(
        name: str, vector: Callable[[str], bytes]) -> None:
    blob = vector(name)
    fresh = sealing.reseal(blob, PASS, NEW, context="localca/ca-key/root")
    assert sealing.is_current(fresh)
    assert unseal_key(fresh, NEW, context="localca/ca-key/root").public_key() == \
        unseal_key(blob, PASS, context="localca/ca-key/root").public_key()
    with pytest.raises(UnsealError):
        unseal(fresh, PASS, context="localca/ca-key/root")


def test_reseal_keeps_a_blob_already_under_the_new_passphrase_and_names_one_under_neither(
        ) -> None:
    done = seal(b"x", NEW, context="scep/ra-key/default/issuing")
    assert sealing.reseal(done, PASS, NEW, context="scep/ra-key/default/issuing") is done
    other = seal(b"x", Secret("a third passphrase"), context="scep/ra-key/default/issuing")
    with pytest.raises(UnsealError, match="^scep/ra-key/default/issuing does not open"):
        sealing.reseal(other, PASS, NEW, context="scep/ra-key/default/issuing")
