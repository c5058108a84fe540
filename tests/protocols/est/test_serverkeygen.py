"""/serverkeygen: key made per the profile, returned with its certificate; archival."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from enroll.protocols.est import store
from enroll.protocols.est.serverkeygen import KeyBox
from harness import est_enroll

from enroll.crypto.keys import key_type_of
from enroll.model import RequestStatus
from enroll.testing import make_csr
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
    r = est_enroll(h, make_csr(cn="archived"), op="serverkeygen")
    assert r.status_code == 200, r.text
    key_der, [cert] = serverkeygen_parts(r.content, r.headers["content-type"])
    assert key_type_of(cert.public_key()) == "ec-p256"
    with h.ctx.db.read() as conn:
        kept = store.get_key_by_serial(conn, format(cert.serial_number, "x"))
    assert kept is not None and kept.archived
    assert key_der not in kept.encrypted_key
    assert KeyBox(h.ctx.config.ca_passphrase).open(kept.encrypted_key, kept.request_id) \
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
