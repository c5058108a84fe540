"""Fixtures for the cross-door tests: one app with SCEP, EST and ACME on one profile,
and a `door_drivers.DoorDriver` for the door under test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from door_drivers import DoorDriver
from harness import ACME_BASE, Harness, LocalDns, acme_section, est_section, scep_section

from enroll.testing.acme_client import Http01Responder

DriverFactory = Callable[..., DoorDriver]


@pytest.fixture
def make_driver(harness_factory: Callable[..., Harness], local_dns: LocalDns,
                responder: Http01Responder) -> DriverFactory:
    """`make_driver(door, profile={...}, other_profiles={...}, scep={...}, est={...},
    acme={...})`: one app whose SCEP, EST and ACME default endpoints all serve the
    profile ``p`` (`profile` is its table); `other_profiles` are added beside it."""

    def factory(door: str, profile: dict[str, Any], *,
                other_profiles: dict[str, Any] | None = None, scep: dict[str, Any] | None = None,
                est: dict[str, Any] | None = None, acme: dict[str, Any] | None = None,
                clock: Any = None) -> DoorDriver:
        profiles = {"p": {"ca": "issuing", **profile}, **(other_profiles or {})}
        acme_table = {"endpoints": {"default": {"profile": "p", "profiles": list(profiles),
                                                **(acme or {})}}}
        h = harness_factory(
            base_url=ACME_BASE, clock=clock, extra_profiles=profiles, listener=True,
            **scep_section(profile="p", **(scep or {})),
            **est_section(profile="p", auth=["basic", "client-cert"], **(est or {})),
            **acme_section(local_dns, responder.port, **acme_table))
        return DoorDriver(door, h, responder)

    return factory
