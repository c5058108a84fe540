"""/serverkeygen: key made per the profile, returned with its certificate; archival."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from enroll.protocols.est import store
from enroll.protocols.est.serverkeygen import open_key, seal_key
from harness import est_enroll

from enroll.config import Secret
from enroll.crypto.keys import key_type_of
from enroll.crypto.sealing import UnsealError, is_sealed
from enroll.errors import Unavailable
from enroll.model import RequestStatus
from enroll.testing import TEST_PASSPHRASE, make_csr
from enroll.testing.est_client import serverkeygen_parts

MANUAL = {"manual": {"ca": "issuing", "validity": "30d", "approval": "manual",
                     "subject": {"CN": "csr"}, "key_types": ["ec-p256"]}}


def _keys(h: Any) -> int:
    with h.ctx.db.read() as conn:
        return store.count_keys(conn)


def test_serverkeygen_returns_a_pkcs8_key_matching_the_certificate(est: Any) -> None:
    r = est_enroll(est, make_csr(cn="keyless", dns=["keyless.example.com"]), op="serverkeygen")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("multipart/mixed")
    key_der, [cert] = serverkeygen_parts(r.content, r.headers["content-type"])
    key = serialization.load_der_private_key(key_der, None)
    assert cert.public_key() == key.public_key()
    assert key_type_of(key.public_key()) == "rsa-2048"  # device profile: first key type
    assert cert.subject.rfc4514_string() == "CN=keyless"
    assert est.counts() == (1, 1)
    assert _keys(est) == 0  # not archived by default


def test_serverkeygen_uses_the_profile_key_type_and_archives_when_asked(make_est: Any) -> None:
    h = make_est(profile="tls-listener", archive_keys=True)
    r = est_enroll(h, make_csr(dns=["archived.example"]), op="serverkeygen")
    assert r.status_code == 200, r.text
    key_der, [cert] = serverkeygen_parts(r.content, r.headers["content-type"])
    assert key_type_of(cert.public_key()) == "ec-p256"
    with h.ctx.db.read() as conn:
        kept = store.get_key_by_serial(conn, format(cert.serial_number, "x"))
    assert kept is not None and kept.archived
    assert key_der not in kept.encrypted_key
    assert open_key(kept.encrypted_key, h.ctx.config.ca_passphrase, kept.request_id) \
        == key_der


def test_pending_serverkeygen_keeps_the_key_until_collected(make_est: Any) -> None:
    h = make_est(extra_profiles=MANUAL, profile="manual")
    csr = make_csr(cn="wait-for-key")
    assert est_enroll(h, csr, op="serverkeygen").status_code == 202
    assert est_enroll(h, csr, op="serverkeygen").status_code == 202
    assert _keys(h) == 1 and h.counts() == (0, 1)
    [pending] = h.ctx.authority.list_requests(RequestStatus.PENDING)
    h.ctx.authority.approve(pending.id, "officer")
    r = est_enroll(h, csr, op="serverkeygen")
    assert r.status_code == 200
    key_der, [cert] = serverkeygen_parts(r.content, r.headers["content-type"])
    assert serialization.load_der_private_key(key_der, None).public_key() == cert.public_key()
    assert _keys(h) == 0  # delivered, not archived: forgotten
    # The next call is a new request with a new key.
    assert est_enroll(h, csr, op="serverkeygen").status_code == 202
    assert h.counts() == (1, 2)


def test_serverkeygen_refuses_bad_credentials_and_stores_nothing(est: Any) -> None:
    r = est_enroll(est, make_csr(cn="x"), op="serverkeygen", auth=("alice", "nope"))
    assert r.status_code == 401
    assert r.content == b""
    assert est.counts() == (0, 0) and _keys(est) == 0


def test_serverkeygen_can_be_disabled(make_est: Any) -> None:
    h = make_est(serverkeygen=False)
    assert est_enroll(h, make_csr(cn="x"), op="serverkeygen").status_code == 404
    assert h.counts() == (0, 0)


_CORE_VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "core"
_PASS = Secret(TEST_PASSPHRASE)


def test_a_key_kept_before_the_shared_sealing_format_still_opens() -> None:
    # Sealed by KeyBox.seal as of commit 937c3c1 (tests/vectors/core/README.md).
    blob = (_CORE_VECTORS / "sealed_pre_v1_est_req-pre-v1.bin").read_bytes()
    expected = serialization.load_pem_public_key(
        (_CORE_VECTORS / "sealed_pre_v1.pub.pem").read_bytes())
    der = open_key(blob, _PASS, "req-pre-v1")
    assert serialization.load_der_private_key(der, None).public_key() == expected
    with pytest.raises(UnsealError):
        open_key(blob, _PASS, "another-request")


def test_kept_keys_are_sealed_in_the_shared_format_bound_to_their_request() -> None:
    blob = seal_key(b"pkcs8 bytes", _PASS, "req-1")
    assert is_sealed(blob)
    assert open_key(blob, _PASS, "req-1") == b"pkcs8 bytes"
    with pytest.raises(UnsealError):
        open_key(blob, _PASS, "req-2")
    with pytest.raises(Unavailable):
        seal_key(b"pkcs8 bytes", None, "req-1")
