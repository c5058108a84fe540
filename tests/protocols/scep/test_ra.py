"""The RA key at rest (sealed with the CA passphrase, RA keys stored before the shared
sealing format still open) and the RA's own transaction namespace."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from enroll.protocols.scep import ra, settings, store
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import CHALLENGE, scep_client, scep_operation, scep_ra

from enroll.clock import FrozenClock
from enroll.crypto.sealing import is_sealed, unseal_key
from enroll.testing import TEST_PASSPHRASE
from enroll.testing.scep_client import csr_with_challenge


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


def _squat(h: Any, transaction_id: str, now: Any) -> None:
    """A client's PKCSReq under `transaction_id`: an ordinary client transaction."""
    client = scep_client(h)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "squatter", CHALLENGE),
                                 transaction_id, now=now)
    reply = client.read(scep_operation(h, message).content)
    assert reply.status is PKIStatus.SUCCESS, reply.certrep.fail_text
    assert reply.certrep.transaction_id == transaction_id
    assert reply.certificate is not None
    assert reply.certificate.subject.rfc4514_string() == "CN=squatter"


def _near_expiry(clock: FrozenClock, ra_cert: x509.Certificate) -> None:
    """Past the point where the next generation takes over (half the overlap before
    expiry), with no next generation made yet: it is made and current at once."""
    clock.advance(ra_cert.not_valid_after_utc - ra.RENEW_BEFORE / 2 + dt.timedelta(days=1)
                  - clock.now())


def _fresh_ra_serves(h: Any, clock: FrozenClock, previous: x509.Certificate) -> x509.Certificate:
    current = scep_ra(h)
    assert current.serial_number != previous.serial_number
    assert current.not_valid_after_utc - clock.now() > ra.RENEW_BEFORE
    client = scep_client(h)  # a device enrolls through the new RA
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "after", CHALLENGE),
                                 now=clock.now())
    assert client.read(scep_operation(h, message).content).status is PKIStatus.SUCCESS
    return current


def test_a_client_cannot_squat_the_next_ra_transaction(make_scep: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    scep = make_scep(clock=clock)
    endpoint = settings.parse(scep.ctx.config)[0]
    first = scep_ra(scep)
    for generation in (2, 3):  # every id the next two RA generations are requested under
        _squat(scep, f"ra:{endpoint.ca}:{generation}", clock.now())
    squatted = {r["transaction_id"]: r["protocol"] for r in scep.rows("requests")
                if r["transaction_id"].startswith("ra:")}
    assert squatted == {f"ra:{endpoint.ca}:1": ra.RA_PROTOCOL,
                        f"ra:{endpoint.ca}:2": "scep", f"ra:{endpoint.ca}:3": "scep"}

    _near_expiry(clock, first)
    second = _fresh_ra_serves(make_scep(clock=clock), clock, first)  # the next start
    _near_expiry(clock, second)
    again = make_scep(clock=clock)
    _fresh_ra_serves(again, clock, second)
    with again.ctx.db.read() as tx:
        stored = store.get_ra(tx, endpoint.label, endpoint.ca)
    assert stored is not None and stored.generation == 3
    ra_requests = [r for r in again.rows("requests") if r["protocol"] == ra.RA_PROTOCOL]
    assert sorted(r["transaction_id"] for r in ra_requests) == \
        [f"ra:{endpoint.ca}:{g}" for g in (1, 2, 3)]
    assert all(r["status"] == "issued" for r in ra_requests)
    assert again.counts() == (4, 4)  # the squatters' and the devices': client requests


def test_an_ra_requested_under_the_old_scheme_is_found_and_renewed(make_scep: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    scep = make_scep(clock=clock)
    endpoint = settings.parse(scep.ctx.config)[0]
    first = scep_ra(scep)
    with scep.ctx.db.write() as tx:  # what the code before the scep-ra namespace stored
        assert tx.run("UPDATE requests SET protocol = 'scep' WHERE protocol = ?",
                      (ra.RA_PROTOCOL,)) == 1
        tx.run("UPDATE certificates SET protocol = 'scep' WHERE protocol = ?",
               (ra.RA_PROTOCOL,))
    _squat(scep, f"ra:{endpoint.ca}:2", clock.now())
    restarted = make_scep(clock=clock)
    assert scep_ra(restarted).serial_number == first.serial_number  # found, not reissued
    _near_expiry(clock, first)
    renewed = make_scep(clock=clock)
    _fresh_ra_serves(renewed, clock, first)
    rows = {(r["protocol"], r["transaction_id"]) for r in renewed.rows("requests")
            if r["transaction_id"].startswith("ra:")}
    assert rows == {("scep", f"ra:{endpoint.ca}:1"), ("scep", f"ra:{endpoint.ca}:2"),
                    (ra.RA_PROTOCOL, f"ra:{endpoint.ca}:2")}


def test_an_ra_issued_by_a_start_that_died_before_storing_its_key_is_issued_again(
        make_scep: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ra, "WAIT_FOR_OTHER_WORKER", 0.3)
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    scep = make_scep(clock=clock)
    endpoint = settings.parse(scep.ctx.config)[0]
    first = scep_ra(scep)
    _near_expiry(clock, first)
    # What a start that died after the core issued generation 2 left: its request and
    # certificate, no scep_ra_keys row (the key was only in that process's memory).
    ra._issue(scep.ctx.frontend, endpoint, endpoint.ca, f"ra:{endpoint.ca}:2")
    restarted = make_scep(clock=clock)
    _fresh_ra_serves(restarted, clock, first)
    with restarted.ctx.db.read() as tx:
        stored = store.get_ra(tx, endpoint.label, endpoint.ca)
    assert stored is not None and stored.generation == 2
    tids = sorted(r["transaction_id"] for r in restarted.rows("requests")
                  if r["protocol"] == ra.RA_PROTOCOL)
    assert tids[:2] == [f"ra:{endpoint.ca}:1", f"ra:{endpoint.ca}:2"]
    assert len(tids) == 3 and tids[2].startswith(f"ra:{endpoint.ca}:2:")
