"""The MDM off-boarding receiver (`enroll.device_events`) over HTTP through the app: a
device's certificates from SCEP, EST and ACME revoked by one signed event, on SQLite
and PostgreSQL; every refused delivery changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography import x509
from door_drivers import DoorDriver
from harness import (
    ACME_BASE,
    Harness,
    LocalDns,
    acme_section,
    est_section,
    scep_section,
    with_transport,
)

from enroll.device_events import sign
from enroll.errors import ConfigError
from enroll.model import CertificateStatus
from enroll.testing.acme_client import Http01Responder

SECRET = "mdm-shared-secret-0123456789"  # noqa: S105 - test value
TOKEN = "mdm-bearer-token-9876543210"  # noqa: S105 - test value
URL = "/events/device"
# Identified by its DNS name; the device id is the CN (a device's hostname), which
# every door can carry.
PROFILE: dict[str, Any] = {
    "ca": "issuing", "validity": "30d", "device_id": "subject.CN",
    "san": {"dns": ["*.corp.example"]}, "subject": {"CN": "csr"},
    "key_types": ["ec-p256"], "extended_key_usage": ["client_auth"],
}


@pytest.fixture
def fleet(harness_factory: Callable[..., Harness], local_dns: LocalDns,
          responder: Http01Responder) -> dict[str, DoorDriver]:
    """One app, SCEP, EST and ACME on profile ``p``, ``[events]`` with both secrets."""
    h = harness_factory(
        base_url=ACME_BASE, extra_profiles={"p": PROFILE}, listener=True,
        events={"hmac_secret": SECRET, "bearer_token": TOKEN},
        **scep_section(profile="p"),
        **est_section(profile="p", auth=["basic", "client-cert"]),
        **acme_section(local_dns, responder.port,
                       endpoints={"default": {"profile": "p", "profiles": ["p"]}}))
    return {door: DoorDriver(door, h, responder) for door in ("scep", "est", "acme")}


def signed(event: dict[str, Any], *, secret: str = SECRET, at: int | None = None,
           body: bytes | None = None) -> dict[str, Any]:
    """`httpx` arguments of a signed delivery of `event`."""
    raw = body if body is not None else json.dumps(event).encode()
    stamp = str(int(time.time()) if at is None else at)
    return {"content": raw, "headers": {"content-type": "application/json",
                                        "x-enroll-timestamp": stamp,
                                        "x-enroll-signature": sign(secret, stamp, raw)}}


async def issue(d: DoorDriver, host: str) -> x509.Certificate:
    answer = await d.enroll(cn=host, dns=[host])
    assert answer.cert is not None, answer
    return answer.cert


def hexserial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def crl_serials(h: Harness) -> set[str]:
    crl = x509.load_der_x509_crl(h.ctx.crls.current("issuing"))
    return {format(r.serial_number, "x") for r in crl}


def status(h: Harness, cert: x509.Certificate) -> CertificateStatus:
    record = h.ctx.authority.lookup(cert)
    assert record is not None
    return record.status


async def test_device_retired_revokes_its_certificates_from_every_door(
        fleet: dict[str, DoorDriver]) -> None:
    h = fleet["scep"].h
    mine = [await issue(fleet[door], "dev-42.corp.example") for door in fleet]
    other = await issue(fleet["est"], "dev-7.corp.example")
    assert {h.ctx.authority.lookup(c).protocol for c in mine} == {"scep", "est", "acme"}
    assert {h.ctx.authority.lookup(c).device_id for c in mine} == {"dev-42.corp.example"}

    event = {"id": "intune-5c1f", "event": "device.retired",
             "device_id": "dev-42.corp.example"}
    delivery = signed(event)
    r = await h.http.post(URL, **delivery)
    assert r.status_code == 200, r.text
    assert r.json()["event"] == "intune-5c1f"
    assert sorted(r.json()["revoked"]) == sorted(hexserial(c) for c in mine)
    for cert in mine:
        record = h.ctx.authority.lookup(cert)
        assert record.status is CertificateStatus.REVOKED
        assert record.revocation_reason is x509.ReasonFlags.cessation_of_operation
    assert status(h, other) is CertificateStatus.VALID
    listed = crl_serials(h)
    assert {hexserial(c) for c in mine} <= listed and hexserial(other) not in listed
    [row] = h.rows("device_events")
    assert (row["id"], row["event"]) == ("intune-5c1f", "device.retired")
    summary = [e for e in h.rows("audit_events") if e["type"] == "certificates.revoked"]
    assert len(summary) == 1 and summary[0]["actor"] == "mdm-event:hmac"
    per_cert = [e for e in h.rows("audit_events") if e["type"] == "certificate.revoked"]
    assert len(per_cert) == 3

    # The same delivery again, and the same id freshly signed: applied once.
    again = await h.http.post(URL, **delivery)
    assert again.status_code == 200
    assert again.json() == {"event": "intune-5c1f", "duplicate": True, "revoked": []}
    fresh = await issue(fleet["est"], "dev-42.corp.example")
    resent = await h.http.post(URL, **signed(event))
    assert resent.json()["duplicate"] is True
    assert status(h, fresh) is CertificateStatus.VALID
    assert len(h.rows("device_events")) == 1
    assert len([e for e in h.rows("audit_events")
                if e["type"] == "certificates.revoked"]) == 1


async def test_user_left_revokes_what_the_user_enrolled_with_a_bearer_token(
        fleet: dict[str, DoorDriver]) -> None:
    h = fleet["est"].h
    cert = await issue(fleet["est"], "laptop.corp.example")
    kept = await issue(fleet["scep"], "printer.corp.example")
    user = h.ctx.authority.lookup(cert).requester
    assert h.ctx.authority.lookup(kept).requester != user
    r = await h.http.post(URL, json={"id": "jamf-1", "event": "user.left", "user": user},
                          headers={"authorization": f"Bearer {TOKEN}",
                                   "x-enroll-timestamp": str(int(time.time()))})
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] == [hexserial(cert)]
    assert h.ctx.authority.lookup(cert).revocation_reason is \
        x509.ReasonFlags.affiliation_changed
    assert status(h, kept) is CertificateStatus.VALID
    assert h.rows("audit_events")[-1]["actor"] == "mdm-event:bearer"


async def test_refused_deliveries_change_nothing(fleet: dict[str, DoorDriver]) -> None:
    h = fleet["est"].h
    cert = await issue(fleet["est"], "dev-9.corp.example")
    event = {"id": "e-1", "event": "device.wiped", "device_id": "dev-9.corp.example"}
    now = int(time.time())
    body = json.dumps(event).encode()
    tampered = signed(event)
    tampered["content"] = body.replace(b"e-1", b"e-2")
    cases: list[tuple[str, int, dict[str, Any]]] = [
        ("bad signature", 401, signed(event, secret="not-the-shared-secret")),  # noqa: S106
        ("tampered body", 401, tampered),
        ("stale timestamp", 401, signed(event, at=now - 301)),
        ("future timestamp", 401, signed(event, at=now + 301)),
        ("no timestamp", 401, {"content": body, "headers": {
            "x-enroll-signature": sign(SECRET, now, body)}}),
        ("wrong bearer", 401, {"content": body, "headers": {
            "authorization": "Bearer not-the-token-at-all",
            "x-enroll-timestamp": str(now)}}),
        ("no credentials", 401, {"content": body, "headers": {
            "x-enroll-timestamp": str(now)}}),
        ("malformed JSON", 400, signed(event, body=b'{"id": "e-1", "event": ')),
        ("not an object", 400, signed(event, body=b'["device.wiped"]')),
        ("unknown event", 400, signed({**event, "event": "device.lost"})),
        ("two selectors", 400, signed({**event, "user": "alice"})),
        ("no id", 400, signed({k: v for k, v in event.items() if k != "id"})),
        ("long id", 400, signed({**event, "id": "x" * 129})),
        ("deep JSON", 400, signed(event, body=b'{"id": "e", "x": [[[[[[1]]]]]]}')),
        ("oversized body", 413, signed(event, body=b'{"pad": "' + b"x" * 20000 + b'"}')),
    ]
    unauthorized = set()
    for name, code, kwargs in cases:
        r = await h.http.post(URL, **kwargs)
        assert r.status_code == code, (name, r.status_code, r.text)
        if code == 401:
            unauthorized.add(r.text)
        else:
            assert "error" in r.json(), name
    assert len(unauthorized) == 1  # one answer for every authentication failure
    assert status(h, cert) is CertificateStatus.VALID
    assert h.rows("device_events") == []
    assert hexserial(cert) not in crl_serials(h)
    # The plain-HTTP listener does not serve it (a bearer token would travel in clear).
    transport = httpx.ASGITransport(app=with_transport(h.app, None, None, tls=False))
    async with httpx.AsyncClient(transport=transport, base_url=ACME_BASE) as client:
        plain = await client.post(URL, **signed(event))
    assert plain.status_code == 403
    assert status(h, cert) is CertificateStatus.VALID


def test_no_secret_no_route_and_bad_settings_refused(
        harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory()
    r = h.post(URL, **signed({"id": "e", "event": "device.retired", "device_id": "d"}))
    assert r.status_code == 404
    with pytest.raises(ConfigError, match="events.hmac_secret"):
        harness_factory(events={"hmac_secret": "short"})
    with pytest.raises(ConfigError, match="events.retain"):
        harness_factory(events={"bearer_token": TOKEN, "max_skew": "10m", "retain": "15m"})
    with pytest.raises(ConfigError, match="events.secret"):
        harness_factory(events={"secret": SECRET})


def test_old_event_ids_are_pruned_after_retain(
        harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(events={"hmac_secret": SECRET, "max_skew": 60, "retain": 120})
    with h.ctx.db.write() as tx:
        tx.run("INSERT INTO device_events (id, event, received_at, details) "
               "VALUES (?, ?, ?, ?)",
               ("old", "device.retired", tx.when(h.ctx.clock.now().replace(year=2020)), "{}"))
    r = h.post(URL, **signed({"id": "new", "event": "device.retired", "device_id": "none"}))
    assert r.status_code == 200 and r.json()["revoked"] == []
    assert [row["id"] for row in h.rows("device_events")] == ["new"]


