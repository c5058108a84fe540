"""The console's own figures and drawing, on both databases: certificates issued per day
by protocol (the dashboard's chart) count exactly what was issued, today and not
before; the SVG chart escapes every label."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from enroll.admin import operations
from enroll.admin.principal import Forbidden, Principal
from enroll.admin.roles import Role
from enroll.admin.ui import svg_chart
from harness import Harness, est_enroll, est_section

from enroll.model import RequestStatus
from enroll.testing import make_csr

VIEWER = Principal("user:vera", Role.VIEWER, "user")


def test_issued_per_day_counts_what_was_issued_by_protocol(
        harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(base_url="https://testserver", listener=True, **est_section())
    for n in range(3):
        assert est_enroll(h, make_csr(cn=f"dev-{n}.example")).status_code == 200
    days = operations.issued_per_day(h.ctx, VIEWER, 7)
    assert [d for d, _ in days] == [h.ctx.clock.now().astimezone(dt.UTC).date()
                                    - dt.timedelta(days=back) for back in range(6, -1, -1)]
    assert days[-1][1].get("est") == 3
    assert all(not counts for _, counts in days[:-1])
    every = operations.requests(h.ctx, VIEWER, RequestStatus.ISSUED, 100)
    pages = [operations.requests(h.ctx, VIEWER, RequestStatus.ISSUED, 2, offset=offset)
             for offset in (0, 2, 4)]
    assert [r.id for page in pages for r in page] == [r.id for r in every]
    assert len(every) >= 3 and len(pages[0]) == 2
    assert operations.expiring_count(h.ctx, VIEWER, 30 * 86400) == (0, False)
    assert operations.expiring_count(h.ctx, VIEWER, 400 * 86400)[0] >= 3


def test_a_viewer_may_not_revoke_a_ca(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory()
    with pytest.raises(Forbidden):
        operations.revoke_ca(h.ctx, VIEWER, "issuing", "cACompromise")


def test_the_chart_escapes_its_labels_and_scales_to_whole_numbers() -> None:
    svg: Any = svg_chart.stacked_bars(["12-01", "12-02"],
                                      {"<script>x</script>": [3, 4], "est": [0, 2]}, "a&b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<title>a&amp;b</title>" in svg
    assert svg.count("<rect") == 3 + 2  # two bars of one, one of two, two legend keys
    assert [svg_chart.nice_max(v) for v in (0, 1, 3, 6, 11, 180)] == [1, 1, 5, 10, 20, 200]
