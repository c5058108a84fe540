"""SCEP fixtures: an app with a configured SCEP endpoint (`harness.Harness`, made by the
shared ``harness_factory``) and micromdm's scepclient. Requests and clients for it are
the ``scep_*`` functions in tests/harness.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from harness import Harness, require_binary, scep_section

HarnessFactory = Callable[..., Harness]


@pytest.fixture
def make_scep(harness_factory: HarnessFactory) -> HarnessFactory:
    """`make_scep(endpoint_overrides..., endpoints=..., extra_profiles=..., clock=...)`."""

    def factory(endpoints: dict[str, Any] | None = None, clock: Any = None,
                extra_profiles: dict[str, Any] | None = None, **default: Any) -> Harness:
        return harness_factory(clock=clock, extra_profiles=extra_profiles,
                               **scep_section(endpoints, **default))

    return factory


@pytest.fixture
def scep(make_scep: HarnessFactory) -> Harness:
    return make_scep()


@pytest.fixture
def scepclient() -> str:
    """micromdm's scepclient; skipped when missing unless ENROLL_REQUIRE_INTEROP=1."""
    return require_binary("scepclient")
