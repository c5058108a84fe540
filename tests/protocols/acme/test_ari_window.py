"""ACME ARI (RFC 9773 §4.2): the suggested window is the renewal window of the
certificate's profile as configured now, the one `enroll inventory` calls ``due``."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from cryptography import x509
from enroll.protocols.acme import ari
from harness import acme_client

from enroll.config import default_raw_config
from enroll.model import CertificateStatus
from enroll.profile_fleet import Fleet
from enroll.renewal_states import DEFAULT_FLEET
from enroll.testing.acme_client import Http01Responder


def _window(body: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    w = body["suggestedWindow"]
    return dt.datetime.fromisoformat(w["start"]), dt.datetime.fromisoformat(w["end"])


async def _issue_and_ask(harness: Any, responder: Http01Responder, name: str
                         ) -> tuple[x509.Certificate, tuple[dt.datetime, dt.datetime]]:
    acme = acme_client(harness)
    await acme.register()
    pem = await acme.issue([name], responder)
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    d = await acme.directory()
    r = await harness.http.get(f"{d['renewalInfo']}/{ari.cert_id(leaf)}")
    assert r.status_code == 200, r.text
    return leaf, _window(r.json())


async def test_suggested_window_is_the_profiles_renew_before(
        make_harness: Any, responder: Http01Responder) -> None:
    server = copy.deepcopy(default_raw_config()["profiles"]["server"])
    harness = make_harness(extra_profiles={"server": {**server, "renew_before": "10d"}})
    leaf, (start, end) = await _issue_and_ask(harness, responder, "ari-fixed.example")
    not_after = leaf.not_valid_after_utc
    assert abs(start - (not_after - dt.timedelta(days=10))) <= dt.timedelta(seconds=1)
    assert abs(end - (not_after - dt.timedelta(days=5))) <= dt.timedelta(seconds=1)


async def test_suggested_window_by_default_opens_30_days_before_expiry(
        harness: Any, responder: Http01Responder) -> None:
    leaf, (start, end) = await _issue_and_ask(harness, responder, "ari-default.example")
    not_after = leaf.not_valid_after_utc
    assert abs(start - (not_after - dt.timedelta(days=30))) <= dt.timedelta(seconds=1)
    assert abs(end - (not_after - dt.timedelta(days=15))) <= dt.timedelta(seconds=1)


class _Record:
    def __init__(self, status: CertificateStatus) -> None:
        self.status = status
        self.not_before = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
        self.not_after = self.not_before + dt.timedelta(days=40)


def test_window_follows_a_fraction_and_revoked_is_now() -> None:
    now = dt.datetime(2027, 1, 10, tzinfo=dt.UTC)
    record: Any = _Record(CertificateStatus.VALID)
    start, end = _window(ari.window(record, now, Fleet(renew_fraction=0.5)))
    assert (start, end) == (dt.datetime(2027, 1, 21, tzinfo=dt.UTC),
                            dt.datetime(2027, 1, 31, tzinfo=dt.UTC))
    # A profile no longer configured: the default (a third of 40 days, at most 30 days).
    start, _ = _window(ari.window(record, now, DEFAULT_FLEET))
    assert start == record.not_after - dt.timedelta(days=40) / 3
    revoked: Any = _Record(CertificateStatus.REVOKED)
    start, end = _window(ari.window(revoked, now, Fleet(renew_fraction=0.5)))
    assert end == now and start < now
