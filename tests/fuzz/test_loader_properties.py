"""Properties of the bounded loaders over generated input (hypothesis, derandomized so
the suite is repeatable): arbitrary bytes are refused only with the typed errors, and
JSON within the bounds round-trips."""

from __future__ import annotations

import base64
import json
from typing import Any

import crafted
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enroll import bounded_json
from enroll.client_certificates import load_certificate
from enroll.csr import load_csr
from enroll.errors import EnrollError

SETTINGS = settings(derandomize=True, max_examples=400, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SEEDS = [make() for make in crafted.HOSTILE.values()]


def _spliced(data: bytes, seed_index: int, at: int) -> bytes:
    seed = SEEDS[seed_index % len(SEEDS)]
    at %= len(seed) + 1
    return seed[:at] + data + seed[at + len(data):]


@SETTINGS
@given(st.binary(max_size=512), st.integers(0, 1000), st.integers(0, 4000))
def test_csr_loader_refuses_only_with_typed_errors(data: bytes, index: int, at: int) -> None:
    for candidate in (data, _spliced(data, index, at)):
        try:
            load_csr(candidate)
        except EnrollError:
            pass


@SETTINGS
@given(st.binary(max_size=512), st.integers(0, 1000), st.integers(0, 4000))
def test_certificate_loader_refuses_only_with_typed_errors(data: bytes, index: int,
                                                           at: int) -> None:
    cert = (crafted.HOSTILE_DIR.parent.parent / "scep" / "ra.pem").read_bytes()
    der = base64.b64decode(b"".join(cert.splitlines()[1:-1]))
    at %= len(der) + 1
    for candidate in (data, der[:at] + data + der[at + len(data):]):
        try:
            load_certificate(candidate)
        except EnrollError:
            pass


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=30)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@SETTINGS
@given(JSON)
def test_bounded_json_round_trips_within_the_depth_limit(value: Any) -> None:
    text = json.dumps(value)
    if _depth(value) <= bounded_json.MAX_JSON_DEPTH:
        assert bounded_json.loads(text) == value
    else:
        with pytest.raises(EnrollError):
            bounded_json.loads(text)


@SETTINGS
@given(st.binary(max_size=256))
def test_bounded_json_refuses_bytes_only_with_typed_errors(data: bytes) -> None:
    try:
        bounded_json.loads(data)
    except EnrollError:
        pass
