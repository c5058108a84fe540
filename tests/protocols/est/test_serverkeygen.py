"""/serverkeygen: key made per the profile, returned with its certificate; archival; a
key delivered once, to its requester, never for a revoked certificate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from enroll.protocols.est import store
from enroll.protocols.est.serverkeygen import open_key, seal_key
from harness import BOB, est_enroll

from enroll.config import Secret
from enroll.crypto.keys import key_type_of
from enroll.crypto.sealing import UnsealError, is_sealed
from enroll.errors import Unavailable
from enroll.model import NOT_RECOVERABLE, RequestStatus
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
    # Had its worker died while signing, the key would have died with it: recovery
    # must fail such a request rather than certify a key nobody has.
    [record] = [r for r in est.ctx.authority.list_requests(RequestStatus.ISSUED)
                if r.protocol == "est"]
    assert record.attributes.get(NOT_RECOVERABLE) is True


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
    assert NOT_RECOVERABLE not in pending.attributes  # its key is kept: recoverable
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


# -- a server-generated key is delivered once, to the requester who asked ---------------

ARCHIVING_MANUAL = {"extra_profiles": MANUAL, "profile": "manual", "archive_keys": True}


def _key_and_cert(r: Any) -> tuple[bytes, x509.Certificate]:
    assert r.status_code == 200, r.text
    key_der, [cert] = serverkeygen_parts(r.content, r.headers["content-type"])
    assert serialization.load_der_private_key(key_der, None).public_key() == cert.public_key()
    return key_der, cert


def _has_key(r: Any) -> bool:
    return "application/pkcs8" in r.text or "multipart" in r.headers.get("content-type", "")


def _archived(h: Any, cert: x509.Certificate) -> bytes:
    """The archived key of `cert`, as `enroll est archive export` reads it."""
    with h.ctx.db.read() as conn:
        kept = store.get_key_by_serial(conn, format(cert.serial_number, "x"))
    assert kept is not None
    return open_key(kept.encrypted_key, h.ctx.config.ca_passphrase, kept.request_id)


def _approve_pending(h: Any) -> None:
    [pending] = h.ctx.authority.list_requests(RequestStatus.PENDING)
    h.ctx.authority.approve(pending.id, "officer")


def test_an_archived_key_is_delivered_once_and_the_same_template_gets_a_new_key(
        make_est: Any) -> None:
    h = make_est(profile="tls-listener", archive_keys=True)
    template = make_csr(dns=["once.example"])
    first_key, first = _key_and_cert(est_enroll(h, template, op="serverkeygen"))
    again_key, again = _key_and_cert(est_enroll(h, template, op="serverkeygen"))
    assert again_key != first_key
    assert again.public_key() != first.public_key()  # a new key pair, a new certificate
    assert again.serial_number != first.serial_number
    assert _archived(h, first) == first_key and _archived(h, again) == again_key
    assert h.counts() == (2, 2) and _keys(h) == 2


def test_the_key_of_a_revoked_certificate_is_never_sent_again(make_est: Any) -> None:
    h = make_est(profile="tls-listener", archive_keys=True)
    template = make_csr(dns=["revoked-key.example"])
    first_key, first = _key_and_cert(est_enroll(h, template, op="serverkeygen"))
    h.ctx.authority.revoke(first.serial_number, x509.ReasonFlags.key_compromise, "officer")
    again_key, again = _key_and_cert(est_enroll(h, template, op="serverkeygen"))
    assert again_key != first_key
    assert again.public_key() != first.public_key()
    assert _archived(h, first) == first_key  # still there for the operator


def test_a_pending_key_whose_certificate_was_revoked_before_collection_is_not_sent(
        make_est: Any) -> None:
    h = make_est(**ARCHIVING_MANUAL)
    template = make_csr(cn="revoked-while-waiting")
    assert est_enroll(h, template, op="serverkeygen").status_code == 202
    _approve_pending(h)
    [cert] = [r for r in h.rows("certificates") if not r["requester"].startswith("system:")]
    h.ctx.authority.revoke(cert["serial"], x509.ReasonFlags.key_compromise, "officer")
    r = est_enroll(h, template, op="serverkeygen")
    assert r.status_code == 202  # a new request for a new key, waiting for approval
    assert not _has_key(r)
    assert h.counts() == (1, 2)
    with h.ctx.db.read() as conn:  # the revoked one's key: archived, never delivered
        kept = store.get_key_by_serial(conn, cert["serial"])
    assert kept is not None and kept.delivered_at is None


def test_a_pending_server_key_is_delivered_on_poll_once(make_est: Any) -> None:
    h = make_est(**ARCHIVING_MANUAL)
    template = make_csr(cn="poll-once")
    assert est_enroll(h, template, op="serverkeygen").status_code == 202
    assert est_enroll(h, template, op="serverkeygen").status_code == 202  # still waiting
    _approve_pending(h)
    key_der, cert = _key_and_cert(est_enroll(h, template, op="serverkeygen"))
    again = est_enroll(h, template, op="serverkeygen")
    assert again.status_code == 202  # a new request; the delivered key is not re-sent
    assert not _has_key(again)
    assert h.counts() == (1, 2)
    assert _archived(h, cert) == key_der
    with h.ctx.db.read() as conn:
        kept = store.get_key_by_serial(conn, format(cert.serial_number, "x"))
    assert kept is not None and kept.delivered_at is not None


def test_racing_polls_for_an_approved_key_deliver_it_once(make_est: Any) -> None:
    h = make_est(extra_profiles=MANUAL, profile="manual")
    template = make_csr(cn="race-for-key")
    assert est_enroll(h, template, op="serverkeygen").status_code == 202
    _approve_pending(h)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: est_enroll(h, template, op="serverkeygen"),
                                range(6)))
    delivered = [a for a in answers if a.status_code == 200]
    assert len(delivered) == 1, [a.status_code for a in answers]
    assert {a.status_code for a in answers} == {200, 202}  # the others: new requests
    assert h.counts()[0] == 1


def test_another_user_replaying_the_template_never_gets_the_first_users_key(
        make_est: Any) -> None:
    h = make_est(profile="tls-listener", archive_keys=True)
    template = make_csr(dns=["shared-template.example"])
    alice_key, _ = _key_and_cert(est_enroll(h, template, op="serverkeygen"))
    bob_key, bob_cert = _key_and_cert(est_enroll(h, template, op="serverkeygen", auth=BOB))
    assert bob_key != alice_key
    assert h.ctx.authority.lookup(bob_cert).requester == "est-user:default:bob"


def test_another_user_polling_with_the_template_never_collects_a_pending_key(
        make_est: Any) -> None:
    h = make_est(**ARCHIVING_MANUAL)
    template = make_csr(cn="pending-shared")
    assert est_enroll(h, template, op="serverkeygen").status_code == 202
    _approve_pending(h)
    r = est_enroll(h, template, op="serverkeygen", auth=BOB)
    assert r.status_code == 202 and not _has_key(r)  # bob's own request, waiting
    key_der, cert = _key_and_cert(est_enroll(h, template, op="serverkeygen"))  # alice's
    assert h.ctx.authority.lookup(cert).requester == "est-user:default:alice"
    assert _archived(h, cert) == key_der
    assert h.counts() == (1, 2)


def test_the_migration_marks_kept_keys_with_their_request_and_delivery(db_url: str) -> None:
    """Keys stored before `delivered_at`: a key with a serial was sent with its
    certificate; a key waiting for approval keeps the transaction a poll finds it by."""
    import datetime as dt

    from alembic import command

    from enroll.store import migrate
    from enroll.store.db import Database

    db = Database(db_url)
    try:
        command.upgrade(migrate.alembic_config(db), "0002_est")
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        with db.write() as tx:
            for rid, serial in (("req-waiting", None), ("req-archived", "abc1")):
                tx.run("INSERT INTO requests (id, status, profile, ca, protocol, endpoint, "
                       "requester, auth_method, transaction_id, key_fingerprint, subject, "
                       "sans, reason, csr_pem, attributes, created_at, updated_at) VALUES "
                       "(?, 'pending', 'device', 'issuing', 'est', 'default', "
                       "'est-user:default:alice', 'basic', ?, 'f', 'CN=x', '[]', '', '', "
                       "'{}', ?, ?)", (rid, f"serverkeygen:{rid}", tx.when(now),
                                       tx.when(now)))
                tx.run("INSERT INTO est_server_keys (request_id, endpoint, serial, key_type, "
                       "encrypted_key, archived, created_at) VALUES (?, 'default', ?, "
                       "'ec-p256', ?, ?, ?)", (rid, serial, b"sealed", serial is not None,
                                               tx.when(now)))
        migrate.upgrade(db)
        with db.read() as tx:
            waiting, archived = (store.get_key_by_request(tx, r)
                                 for r in ("req-waiting", "req-archived"))
        assert waiting is not None and archived is not None
        assert waiting.client_request == "serverkeygen:req-waiting"
        assert waiting.requester == "est-user:default:alice"
        assert waiting.delivered_at is None
        assert archived.delivered_at == now
    finally:
        db.dispose()
