"""Certificate serial numbers: random, positive, and found however an operator types them."""

from __future__ import annotations

import pytest

from enroll.crypto.serials import new_serial, parse_serial_hex, serial_hex


def test_serials_are_sixteen_random_positive_bytes() -> None:
    serials = {new_serial() for _ in range(2000)}
    assert len(serials) == 2000
    assert all(1 << 64 <= s < 1 << 127 for s in serials)
    assert len({s >> 120 for s in serials}) > 64  # the high bits vary


@pytest.mark.parametrize("typed", ["f9fcb138d29415c3", "0F9FCB138D29415C3",
                                   "0x0f9fcb138d29415c3", "0F:9F:CB:13:8D:29:41:5C:3",
                                   " f9fcb138d29415c3\n"])
def test_typed_serials_normalise_to_the_stored_form(typed: str) -> None:
    assert parse_serial_hex(typed) == serial_hex(0xF9FCB138D29415C3) == "f9fcb138d29415c3"


@pytest.mark.parametrize("typed", ["", "0x", "xyz", "12-34", "1" * 41])
def test_garbage_serials_are_refused(typed: str) -> None:
    with pytest.raises(ValueError):
        parse_serial_hex(typed)
