"""The fuzz smoke runs on SQLite only (what it looks for is in the parsers, not the
database), so it stays within its time budget in the full suite. ACME needs the
validator's loopback DNS and http-01 port, as in tests/protocols/acme/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import ACME_BASE, Harness, LocalDns, acme_section

from enroll.testing.acme_client import Http01Responder


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'enroll.db'}"


@pytest.fixture
def make_harness(harness_factory: Callable[..., Harness], local_dns: LocalDns,
                 responder: Http01Responder) -> Callable[..., Harness]:
    def factory(**acme: Any) -> Harness:
        return harness_factory(base_url=ACME_BASE, **acme_section(local_dns, responder.port,
                                                                  **acme))

    return factory
