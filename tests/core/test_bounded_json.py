"""The one loader of client JSON: bounded size and depth, typed refusals only."""

from __future__ import annotations

from typing import Any

import pytest

from enroll.bounded_json import MAX_JSON_DEPTH, loads
from enroll.errors import MalformedInput


@pytest.mark.parametrize(("data", "value"), [
    (b'{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
    ('"é"', "é"), (b"[]", []),
    (b'"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["', "[" * 34),  # brackets in a string
])
def test_json_within_the_bounds_loads(data: Any, value: Any) -> None:
    assert loads(data) == value


@pytest.mark.parametrize("data", [
    b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
    b'{"a":' * 17 + b"1" + b"}" * 17,
    b"[" * 100000,                       # RecursionError inside json, not a ValueError
    b"[" * 30000 + b"]" * 30000,
    b"\xff\xfe\x00", b"", b"{", b"1" * 5000,  # int of more than 4300 digits
    b'{"a": 1} trailing', "\ud800",
])
def test_json_outside_the_bounds_is_malformed_input(data: Any) -> None:
    with pytest.raises(MalformedInput):
        loads(data, max_bytes=200000)


def test_nesting_at_the_limit_loads() -> None:
    value = loads(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    for _ in range(MAX_JSON_DEPTH - 1):
        value = value[0]
    assert value == []


def test_size_bound_is_checked_before_parsing() -> None:
    with pytest.raises(MalformedInput, match="larger than 10 bytes"):
        loads(b"[" * 11, max_bytes=10)
    with pytest.raises(MalformedInput):
        loads(None)  # type: ignore[arg-type]
