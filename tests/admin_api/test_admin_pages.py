"""Keyset pages of the admin operations the API lists through (certificates soonest
expiry first, requests newest first): every row once, in order, however the rows tie
on their time, on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

from typing import Any

import pytest
from enroll.admin import operations
from enroll.admin.principal import Principal
from enroll.admin.roles import Role

from enroll.errors import MalformedInput
from enroll.model import Issued, Pending, RequestStatus
from enroll.testing import make_csr, request

VIEWER = Principal("token:pages", Role.VIEWER, "token")
GATED = {"gated": {"ca": "issuing", "validity": "30d", "approval": "manual",
                   "extended_key_usage": ["client_auth"], "san": {"dns": ["*"]}}}


@pytest.fixture
def ctx(make_config: Any) -> Any:
    from enroll.context import build_context

    built = build_context(make_config(extra_profiles=GATED))
    yield built
    built.db.dispose()


def test_certificate_pages_cover_every_certificate_once_soonest_first(ctx: Any) -> None:
    serials = set()
    for i in range(7):
        out = ctx.authority.submit(request(make_csr(cn=f"paged-{i}"), "device"))
        assert isinstance(out, Issued)
        serials.add(out.serial_hex)
    filters = operations.CertificateFilters(profile="device")
    seen: list[Any] = []
    after = None
    for _ in range(10):  # a cursor that did not advance would fill every page
        page = operations.certificates(ctx, VIEWER, filters, limit=3, after=after)
        seen += page
        if len(page) < 3:
            break
        after = (page[-1].not_after, page[-1].serial_hex)
    assert {r.serial_hex for r in seen} == serials and len(seen) == 7
    keys = [(r.not_after, r.serial_hex) for r in seen]
    assert keys == sorted(keys)
    with pytest.raises(MalformedInput):
        operations.certificates(ctx, VIEWER, filters, limit=0)


def test_request_pages_cover_every_request_once_newest_first(ctx: Any) -> None:
    ids = set()
    for i in range(5):
        out = ctx.authority.submit(request(make_csr(cn=None, dns=[f"q{i}.example"]),
                                           "gated"))
        assert isinstance(out, Pending)
        ids.add(out.request_id)
    seen: list[Any] = []
    before = None
    for _ in range(10):  # a cursor that did not advance would fill every page
        page = operations.requests(ctx, VIEWER, RequestStatus.PENDING, 2, before=before)
        seen += page
        if len(page) < 2:
            break
        before = (page[-1].created_at, page[-1].id)
    assert {r.id for r in seen} == ids and len(seen) == 5
    keys = [(r.created_at, r.id) for r in seen]
    assert keys == sorted(keys, reverse=True)
