"""The one error table covers every core error class."""

from __future__ import annotations

from enroll.protocols.acme.problems import ERROR_TABLE, NS, from_error

from enroll.errors import ALL_ERRORS


def test_error_table_covers_all_errors() -> None:
    assert set(ALL_ERRORS) <= set(ERROR_TABLE)
    for cls in ALL_ERRORS:
        problem = from_error(cls("why"))
        assert problem.document()["type"].startswith(NS)
        assert problem.detail == "why"
        assert 400 <= problem.status < 600


def test_unknown_enroll_error_subclass_maps_through_its_parent() -> None:
    from enroll.errors import BadCSR

    class Odd(BadCSR):
        pass

    assert from_error(Odd("x")).typ == "badCSR"
