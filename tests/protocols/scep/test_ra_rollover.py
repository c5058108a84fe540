"""GetCACert carries the CA after the RA, and the RA rolls over with an overlap: the next
generation is published ahead (GetNextCACert), takes over half-way, and the old one opens
requests until it expires; every app instance on one database agrees, without restart."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from enroll.protocols.scep import ra, signeddata, store
from enroll.protocols.scep.failinfo import FailInfo
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import CHALLENGE, Harness, scep_operation, scep_ra

from enroll.clock import FrozenClock
from enroll.testing.scep_client import ScepClient, csr_with_challenge

SCEP_CA = {"ca": "scep"}  # the embedded default's RSA issuing CA, as enroll serve writes it


def _getcacert(h: Harness) -> list[x509.Certificate]:
    r = h.get("/scep", params={"operation": "GetCACert"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-x509-ca-ra-cert"
    return signeddata.degenerate_contents(r.content)[0]


def _next(h: Harness) -> tuple[x509.Certificate, list[x509.Certificate]] | None:
    """(signer, certificates) of GetNextCACert, or None for its 404."""
    r = h.get("/scep", params={"operation": "GetNextCACert"})
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-x509-next-ca-cert"
    signed = signeddata.parse(r.content)
    signeddata.verify(signed, signeddata.HASHES)
    assert signed.content is not None
    return signed.signer, signeddata.degenerate_contents(signed.content)[0]


def _caps(h: Harness) -> list[str]:
    return h.get("/scep", params={"operation": "GetCACaps"}).text.split()


def _key_encipherment(cert: x509.Certificate) -> bool:
    return cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def _enrol(h: Harness, ra_cert: x509.Certificate, name: str,
           now: dt.datetime) -> tuple[PKIStatus, x509.Certificate | None, x509.Certificate,
                                      FailInfo | None]:
    """A device whose GetCACert gave `ra_cert` enrols: (status, certificate, the CertRep's
    signer, failInfo)."""
    client = ScepClient(ra_cert)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, name, CHALLENGE), now=now)
    body = scep_operation(h, message).content
    signer = signeddata.parse(body).signer  # which RA answered is asserted by the caller
    client.ra = signer
    answer = client.read(body)
    return answer.status, answer.certificate, signer, answer.certrep.fail_info


def test_getcacert_has_the_ra_first_then_the_rsa_issuing_ca_the_certificate_chains_to(
        make_scep: Any) -> None:
    h = make_scep(**SCEP_CA)
    certs = _getcacert(h)
    assert len(certs) == 2
    ra_cert, ca_cert = certs
    assert ca_cert.subject.rfc4514_string() == "CN=enroll SCEP Issuing CA,O=enroll"
    assert isinstance(ca_cert.public_key(), rsa.RSAPublicKey)
    # The RA is the one certificate a client may encrypt to (keyEncipherment).
    assert _key_encipherment(ra_cert)
    assert not ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    status, issued, _, _ = _enrol(h, ra_cert, "chains", dt.datetime.now(dt.UTC))
    assert status is PKIStatus.SUCCESS and issued is not None
    issued.verify_directly_issued_by(ca_cert)
    public = ca_cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert issued.signature_hash_algorithm is not None
    public.verify(issued.signature, issued.tbs_certificate_bytes, padding.PKCS1v15(),
                  issued.signature_hash_algorithm)


def test_with_an_ec_issuing_ca_getcacert_is_the_ra_alone(scep: Harness) -> None:
    """The EC CA would make scepclient-like clients envelope to it: left out (and a
    warning at start-up says so, docs/scep.md)."""
    certs = _getcacert(scep)
    assert [c.subject.rfc4514_string() for c in certs] == ["O=enroll,CN=enroll SCEP RA default"]


def test_the_next_ra_is_published_ahead_takes_over_and_the_old_one_opens_until_it_expires(
        make_scep: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    first = make_scep(clock=clock, **SCEP_CA)
    second = make_scep(clock=clock, **SCEP_CA)  # another app instance on the same database
    old = scep_ra(first)
    assert scep_ra(second) == old
    assert _next(first) is None and "GetNextCACert" not in _caps(first)

    # Within the overlap: the next RA exists, GetNextCACert (signed by the current RA)
    # returns it with the CA; GetCACert still returns the current one.
    clock.advance(old.not_valid_after_utc - dt.timedelta(days=20) - clock.now())
    published = _next(second)
    assert published is not None
    signer, certs = published
    assert signer == old
    nxt, ca_cert = certs
    assert nxt != old and _key_encipherment(nxt)
    assert ca_cert.subject.rfc4514_string() == "CN=enroll SCEP Issuing CA,O=enroll"
    assert _next(first) == published  # the other instance made none of its own
    assert "GetNextCACert" in _caps(first)
    assert scep_ra(first) == old and scep_ra(second) == old

    # A device holding the old RA and one holding the next both enrol during the overlap;
    # each answer is signed by the RA the request was enveloped to.
    now = clock.now()
    for h, held, name in ((first, old, "holds-old"), (second, nxt, "holds-next"),
                          (first, nxt, "next-other-instance")):
        status, issued, answered_by, _ = _enrol(h, held, name, now)
        assert status is PKIStatus.SUCCESS and issued is not None
        assert answered_by == held
        issued.verify_directly_issued_by(ca_cert)

    # Half the overlap before the old one expires, the next becomes current in both
    # instances (neither restarted); the old one still opens requests.
    clock.advance(old.not_valid_after_utc - dt.timedelta(days=10) - clock.now())
    assert scep_ra(first) == nxt and scep_ra(second) == nxt
    assert _next(first) is None
    status, _, answered_by, _ = _enrol(second, old, "late-old", clock.now())
    assert status is PKIStatus.SUCCESS and answered_by == old

    # Once the old RA has expired, a request enveloped to it is not opened.
    clock.advance(old.not_valid_after_utc + dt.timedelta(minutes=1) - clock.now())
    status, issued, answered_by, fail_info = _enrol(first, old, "too-late", clock.now())
    assert status is PKIStatus.FAILURE and issued is None
    assert fail_info is FailInfo.BAD_MESSAGE_CHECK and answered_by == nxt
    status, _, answered_by, _ = _enrol(first, nxt, "current", clock.now())
    assert status is PKIStatus.SUCCESS and answered_by == nxt

    # Every generation is kept; exactly two RA certificates were issued.
    with first.ctx.db.read() as tx:
        generations = store.ra_generations(tx, "default", "scep")
    assert [g for g, _ in generations] == [1, 2]
    ra_requests = [r for r in first.rows("requests") if r["protocol"] == ra.RA_PROTOCOL]
    assert sorted(r["transaction_id"] for r in ra_requests) == ["ra:scep:1", "ra:scep:2"]


def test_a_server_down_through_the_overlap_switches_at_once(make_scep: Any) -> None:
    """No worker ran during the overlap: the next RA is made and current at once, and
    the old one (not expired yet) still opens."""
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    h = make_scep(clock=clock)
    old = scep_ra(h)
    clock.advance(old.not_valid_after_utc - dt.timedelta(days=2) - clock.now())
    current = scep_ra(h)
    assert current != old
    assert current.not_valid_after_utc - clock.now() > ra.RENEW_BEFORE
    status, _, answered_by, _ = _enrol(h, old, "old", clock.now())
    assert status is PKIStatus.SUCCESS and answered_by == old


def test_the_migration_keeps_the_stored_ra_as_generation_one_active_since_created(
        db_url: str) -> None:
    from alembic import command

    from enroll.store import migrate
    from enroll.store.db import Database

    db = Database(db_url)
    try:
        command.upgrade(migrate.alembic_config(db), "0002_scep")
        created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        with db.write() as tx:
            tx.run("INSERT INTO scep_ra_keys (endpoint, ca, generation, certificate_pem, "
                   "key_blob, created_at) VALUES ('default', 'issuing', 3, 'pem', ?, ?)",
                   (b"sealed", tx.when(created)))
        migrate.upgrade(db)
        with db.read() as tx:
            stored = store.get_ra(tx, "default", "issuing")
            assert store.ra_generations(tx, "default", "issuing") == [(3, created)]
        assert stored is not None and stored.generation == 3
        assert stored.activates_at == created and stored.key_blob == b"sealed"
        with db.write() as tx:  # the next generation is a row of its own
            store.insert_ra(tx, store.StoredRA("default", "issuing", 4, "pem4", b"k4"),
                            created)
        with db.read() as tx:
            assert [g for g, _ in store.ra_generations(tx, "default", "issuing")] == [3, 4]
    finally:
        db.dispose()
