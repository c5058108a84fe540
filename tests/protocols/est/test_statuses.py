"""The EST error table covers every core error; internal errors say nothing."""

from __future__ import annotations

import logging

import pytest
from enroll.protocols.est import statuses

from enroll import errors


def test_every_core_error_has_an_est_status() -> None:
    assert set(statuses.STATUS) == set(errors.ALL_ERRORS)
    for cls in errors.ALL_ERRORS:
        assert 400 <= statuses.STATUS[cls] < 600


@pytest.mark.parametrize("cls", errors.ALL_ERRORS)
def test_each_error_renders_its_status_and_only_its_detail(cls: type) -> None:
    response = statuses.error_response(cls("client-safe detail"), "rid")
    assert response.status_code == statuses.STATUS[cls]
    if response.status_code == 401:
        assert response.body == b""
        assert response.headers["www-authenticate"].startswith("Basic")
    else:
        assert response.body == b"client-safe detail\n"


def test_unknown_exceptions_are_500_without_detail(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="enroll.est"):
        response = statuses.error_response(RuntimeError("SELECT secret FROM t"), "rid-1")
    assert response.status_code == 500
    assert b"SELECT" not in response.body and b"rid-1" in response.body
    assert "rid-1" in caplog.text
