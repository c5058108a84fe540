"""``enroll_identities{profile,protocol,state}`` on /metrics: the inventory by renewal
state, read from the database at scrape time, so two workers on one database report the
same numbers (frozen clock, real store)."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from cryptography import x509
from harness import Harness

from enroll import config as config_mod
from enroll.clock import FrozenClock
from enroll.model import Issued
from enroll.testing import make_csr, request


def _samples(text: str, name: str) -> dict[tuple[str, str, str], float]:
    """``{(profile, protocol, state): value}`` of gauge `name` in exposition `text`."""
    found: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1:].rsplit("} ", 1)
            parts = dict(p.split("=", 1) for p in labels.split(","))
            found[(parts["profile"].strip('"'), parts["protocol"].strip('"'),
                   parts["state"].strip('"'))] = float(value)
    return found


def test_identities_are_counted_by_state_the_same_on_every_worker(
        harness_factory: Callable[..., Harness]) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    short = copy.deepcopy(config_mod.default_raw_config()["profiles"]["device"])
    short["validity"] = "10d"
    first = harness_factory(clock=clock, extra_profiles={"short": short})
    second = harness_factory(clock=clock, extra_profiles={"short": short})
    authority = first.app.state.enroll.authority

    def issue(cn: str, profile: str = "device", protocol: str = "core") -> Issued:
        outcome = authority.submit(request(make_csr(cn=cn), profile, protocol=protocol))
        assert isinstance(outcome, Issued)
        return outcome

    issue("a.example")
    issue("b.example", protocol="scep")
    gone = issue("d.example")
    authority.revoke(gone.serial_hex, x509.ReasonFlags.key_compromise, "test")
    issue("f.example", "short")
    clock.advance(dt.timedelta(days=10))
    issue("c.example")
    # Device certificates renew from 30 days before notAfter, overdue from 15 days.
    clock.advance(dt.timedelta(days=342))
    issue("g.example")
    issue("a2.example")
    renewed = issue("a2.example")  # a renewal: the identity counts once, ok

    scraped = [_samples(h.get("/metrics").text, "enroll_identities")
               for h in (first, second)]
    assert scraped[0] == scraped[1]
    states: dict[tuple[str, str, str], Any] = scraped[0]
    assert {k: v for k, v in states.items() if v} == {
        ("device", "core", "ok"): 2,        # g, a2
        ("device", "core", "due"): 1,       # c: 23 days left
        ("device", "core", "overdue"): 1,   # a: 13 days left
        ("device", "core", "revoked"): 1,   # d
        ("device", "scep", "overdue"): 1,   # b
        ("short", "core", "expired"): 1,    # f
    }  # the SCEP RA's own certificate, made at start-up, is not the fleet's: not counted
    assert set(states) == {(p, proto, s) for p, proto in
                           (("device", "core"), ("device", "scep"), ("short", "core"))
                           for s in ("ok", "due", "overdue", "expired", "revoked")}
    assert renewed.serial_hex
