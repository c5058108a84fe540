"""The NDES-compatible challenge page (Jamf Pro "Dynamic - Microsoft CA"): fetched with
HTTP Basic over HTTPS, parsed as the MDMs' NDES parsers parse it, spent by a SCEP
enrolment exactly once, bound to its endpoint and lifetime, throttled and audited."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

import pytest
from enroll.protocols.est.passwords import hash_fast
from enroll.protocols.scep.failinfo import FailInfo
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import scep_client, scep_operation

from enroll.clock import FrozenClock
from enroll.errors import ConfigError
from enroll.testing.scep_client import csr_with_challenge

PASSWORD = "jamf-admin-password-for-tests"  # noqa: S105 - test value
PAGE = "https://testserver/certsrv/mscep_admin/"
# What the NDES parsers of MDMs match, on the page decoded from UTF-16 (BOM): Zentral's
# "Microsoft CA" challenge and Fleet's NDES proxy.
ZENTRAL = re.compile(r"challenge password is: <B> ([A-Z0-9]{16,32}) </B>")
FLEET = re.compile(r"(?i)The enrollment challenge password is: <B> (?P<password>\S*)")


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


JAMF = _basic("jamf", PASSWORD)


def _dynamic(**extra: Any) -> dict[str, Any]:
    return {"users": {"jamf": hash_fast(PASSWORD)}, **extra}


@pytest.fixture
def make_ndes(harness_factory: Any) -> Any:
    def factory(endpoints: dict[str, Any] | None = None, clock: Any = None,
                **rate_limits: str) -> Any:
        default: dict[str, Any] = {"dynamic_challenge": _dynamic()}
        if rate_limits:
            default["rate_limits"] = rate_limits
        return harness_factory(clock=clock, listener=True,
                               scep={"endpoints": endpoints or {"default": default}})
    return factory


def _parse(r: Any) -> str:
    """The challenge, read as an NDES client reads it."""
    assert r.status_code == 200, r.text
    assert r.content[:2] == b"\xff\xfe"  # UTF-16 little-endian with its BOM, as IIS
    text = r.content.decode("utf-16")
    found = ZENTRAL.search(text)
    assert found is not None, text
    fleet = FLEET.search(text)
    assert fleet is not None and fleet.group("password") == found.group(1)
    return found.group(1)


def _enroll(h: Any, challenge: str, cn: str = "jamf-device", path: str = "/scep") -> Any:
    client = scep_client(h, path)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, cn, challenge))
    return client.read(scep_operation(h, message, path).content)


def test_fetched_challenge_enrols_once(make_ndes: Any) -> None:
    h = make_ndes()
    r = h.get(PAGE, headers=JAMF)
    assert r.headers["content-type"] == "text/html; charset=utf-16"
    assert r.headers["cache-control"] == "no-store"
    challenge = _parse(r)
    assert re.fullmatch(r"[0-9A-F]{32}", challenge)
    assert "expire within 60 minutes" in r.content.decode("utf-16")
    assert _enroll(h, challenge).status is PKIStatus.SUCCESS
    again = _enroll(h, challenge, cn="second")
    assert again.certrep.fail_info is FailInfo.BAD_REQUEST
    assert h.counts() == (1, 1)
    # Each fetch is a new challenge; the fetch is audited, the challenge never.
    other = _parse(h.get(PAGE, headers=JAMF))
    assert other != challenge
    events = [e for e in h.rows("audit_events") if e["type"] == "scep.challenge_created"]
    assert len(events) == 2
    assert events[0]["actor"] == "mscep_admin:jamf"
    details = events[0]["details"]
    details = json.loads(details) if isinstance(details, str) else details
    assert details["endpoint"] == "default" and details["user"] == "jamf"
    assert details["via"] == "mscep_admin" and details["source"] == "127.0.0.1"
    assert challenge not in str(h.rows("audit_events"))
    assert challenge not in str(h.rows("scep_challenges"))


def test_ndes_path_variants(make_ndes: Any) -> None:
    h = make_ndes()
    for url in ("https://testserver/certsrv/mscep_admin",
                "https://testserver/certsrv/mscep_admin/?",
                "https://testserver/certsrv/mscep_admin/?x=1"):
        assert _enroll(h, _parse(h.get(url, headers=JAMF)), cn=url[-3:].strip("/?=")
                       or "v").status is PKIStatus.SUCCESS
    assert h.post(PAGE, headers=JAMF).status_code == 405
    assert h.head(PAGE, headers=JAMF).status_code == 200
    assert h.head(PAGE).status_code == 401
    assert len(h.rows("scep_challenges")) == 3  # the HEADs made none


def test_operator_sets_path_and_lifetime(make_ndes: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    h = make_ndes({"default": {"dynamic_challenge": _dynamic(path="/mdm/challenge",
                                                             ttl="10m")}}, clock=clock)
    assert h.get(PAGE, headers=JAMF).status_code == 404
    r = h.get("https://testserver/mdm/challenge/", headers=JAMF)
    assert "expire within 10 minutes" in r.content.decode("utf-16")
    challenge = _parse(r)
    clock.advance(dt.timedelta(minutes=11))
    assert _enroll(h, challenge).certrep.fail_info is FailInfo.BAD_REQUEST
    assert h.counts() == (0, 0)


def test_challenge_of_another_endpoint_is_refused(make_ndes: Any) -> None:
    h = make_ndes({"default": {"dynamic_challenge": _dynamic()},
                   "org-b": {"dynamic_challenge": _dynamic()}})
    b_page = "https://testserver/certsrv/mscep_admin/org-b/"
    from_b = _parse(h.get(b_page, headers=JAMF))
    assert _enroll(h, from_b).certrep.fail_info is FailInfo.BAD_REQUEST
    assert _enroll(h, from_b, path="/scep/org-b").status is PKIStatus.SUCCESS
    assert h.counts() == (1, 1)


def test_wrong_password_is_401_then_throttled(make_ndes: Any) -> None:
    h = make_ndes(dynamic_challenge_failures_per_address="3/15m")
    missing = h.get(PAGE)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith('Basic realm="')
    for creds in (_basic("jamf", "wrong"), _basic("nobody", PASSWORD),
                  {"authorization": "Basic !!!"}):
        r = h.get(PAGE, headers=creds)
        assert r.status_code == 401 and "www-authenticate" in r.headers
    assert h.get(PAGE, headers=_basic("jamf", "wrong")).status_code == 401
    # Three counted failures (a missing or undecodable header is not counted as a
    # guess): the address is now over its limit, even with the right password.
    r = h.get(PAGE, headers=JAMF)
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 900
    assert h.get(PAGE, headers=JAMF, peer="192.0.2.7").status_code == 200
    h.ctx.authority.flush_refusals()
    reasons = {row["reason"] for row in h.rows("audit_refusals")}
    assert {"dynamic_challenge_unauthorized", "dynamic_challenge_rate_limited"} <= reasons
    assert h.rows("scep_challenges") and len(h.rows("scep_challenges")) == 1


def test_per_user_limit(make_ndes: Any) -> None:
    h = make_ndes(dynamic_challenge_failures_per_user="2/1h")
    for peer in ("192.0.2.1", "192.0.2.2"):
        assert h.get(PAGE, headers=_basic("jamf", "wrong"), peer=peer).status_code == 401
    assert h.get(PAGE, headers=JAMF, peer="192.0.2.3").status_code == 429


def test_plain_http_is_refused(make_ndes: Any) -> None:
    h = make_ndes()
    r = h.get("http://testserver/certsrv/mscep_admin/", headers=JAMF, tls=False)
    assert r.status_code == 403
    assert h.rows("scep_challenges") == []


def test_embedded_plain_http_is_refused(harness_factory: Any) -> None:
    h = harness_factory(scep={"endpoints": {"default": {"dynamic_challenge": _dynamic()}}})
    assert h.get("http://testserver/certsrv/mscep_admin/", headers=JAMF).status_code == 403
    assert _parse(h.get(PAGE, headers=JAMF))


def test_users_file(harness_factory: Any, tmp_path: Any) -> None:
    users = tmp_path / "mscep-users"
    users.write_text(f"# Jamf Pro\njamf:{hash_fast(PASSWORD)}\n")
    h = harness_factory(listener=True, scep={"endpoints": {"default": {
        "dynamic_challenge": {"users_file": str(users)}}}})
    assert _parse(h.get(PAGE, headers=JAMF))


@pytest.mark.parametrize(("table", "message"), [
    ({}, "at least one user"),
    ({"users": {"jamf": "plain"}}, "enroll est hash-password"),
    ({"users": {"jamf": hash_fast("x")}, "ttl": "2d"}, "ttl"),
    ({"users": {"jamf": hash_fast("x")}, "path": "/scep"}, "SCEP path"),
    ({"users": {"jamf": hash_fast("x")}, "nope": 1}, "nope"),
])
def test_bad_configuration_stops_start_up(make_config: Any, table: dict[str, Any],
                                          message: str) -> None:
    from enroll.app import create_app

    with pytest.raises(ConfigError, match=message):
        create_app(make_config(scep={"endpoints": {"default": {
            "dynamic_challenge": table}}}))


def test_needs_one_time_challenges(make_config: Any) -> None:
    from enroll.app import create_app

    with pytest.raises(ConfigError, match="one_time_challenges"):
        create_app(make_config(scep={"endpoints": {"default": {
            "one_time_challenges": False, "dynamic_challenge": _dynamic()}}}))


def test_outstanding_challenges_are_capped(make_ndes: Any) -> None:
    h = make_ndes({"default": {"dynamic_challenge": _dynamic(max_outstanding=2)}})
    first = _parse(h.get(PAGE, headers=JAMF))
    _parse(h.get(PAGE, headers=JAMF))
    full = h.get(PAGE, headers=JAMF)
    assert full.status_code == 503 and full.headers["retry-after"] == "60"
    assert "The password cache is full." in full.content.decode("utf-16")
    assert len(h.rows("scep_challenges")) == 2
    # A used challenge no longer counts: the next fetch gets one.
    assert _enroll(h, first).status is PKIStatus.SUCCESS
    assert _parse(h.get(PAGE, headers=JAMF))
