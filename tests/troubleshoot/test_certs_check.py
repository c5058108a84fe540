"""``enroll certs check SERIAL`` and ``enroll certs check --profile X``: where issued
certificates differ from what their profile builds today; exit 3 when one does."""

from __future__ import annotations

import json
from typing import Any

from door_drivers import DOORS

from enroll import profile_drift

HOST = "pump-{}.corp.example"


async def issue_through_every_door(s: Any) -> list[str]:
    serials = []
    for n, door in enumerate(DOORS):
        answer = await s.driver(door).enroll(cn=HOST.format(n), dns=[HOST.format(n)])
        assert answer.cert is not None, (door, answer)
        serials.append(format(answer.cert.serial_number, "x"))
    return serials


async def test_certificates_as_the_profile_builds_them_do_not_differ(setup: Any) -> None:
    s = setup()
    serials = await issue_through_every_door(s)
    done = s.cli("certs", "check", "--profile", "p")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "3 live certificate(s) of profile p checked, 0 differ"
    done = s.cli("certs", "check", serials[0])
    assert (done.returncode, done.stdout.strip()) == (
        0, f"{serials[0]}: as profile p builds it today")


async def test_a_shorter_validity_and_a_dropped_eku_are_reported_as_drift(setup: Any) -> None:
    s = setup()
    serials = await issue_through_every_door(s)
    changed = s.config_file(validity="7d", extended_key_usage=["client_auth"])
    done = s.cli("certs", "check", "--profile", "p", config=changed)
    assert done.returncode == 3, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "3 live certificate(s) of profile p checked, 3 differ"
    for serial in serials:
        mine = [line.split() for line in lines if line.startswith(serial + " ")]
        assert ["validity", "30d", "1m", "at", "most", "7d", "1m"] in [r[1:8] for r in mine]
        assert ["extended", "key", "usage", "client_auth,", "server_auth", "client_auth"] \
            in [r[1:7] for r in mine]

    one = json.loads(s.cli("certs", "check", serials[2], "--json", config=changed).stdout)
    assert one["differs"] is True
    found = {d["aspect"]: d for d in one["differences"]}
    assert found["validity"] == {
        "aspect": "validity", "certificate": "30d 1m",
        "profile": "at most 7d 1m (validity 7d + backdate 1m)"}
    assert found["extended key usage"] == {
        "aspect": "extended key usage", "certificate": "client_auth, server_auth",
        "profile": "client_auth"}
    assert s.cli("certs", "check", serials[2], config=changed).returncode == 3


async def test_a_narrower_name_rule_and_a_key_rule_are_reported(setup: Any) -> None:
    s = setup()
    [scep, est, acme] = await issue_through_every_door(s)
    changed = s.config_file(san={"dns": ["pump-1.corp.example"]}, key_types=["rsa-2048"])
    report = json.loads(s.cli("certs", "check", "--profile", "p", "--json",
                              config=changed).stdout)
    by_serial = {c["serial"]: {d["aspect"]: d for d in c["differences"]}
                 for c in report["certificates"]}
    assert "rule: subject alternative names" in by_serial[scep]
    assert "pump-0.corp.example" in by_serial[scep]["rule: subject alternative names"][
        "profile"]
    assert "rule: subject alternative names" not in by_serial[est]
    for serial in (scep, est, acme):  # the drivers' keys are EC P-256
        assert "not allowed" in by_serial[serial]["rule: key type and size"]["profile"]


async def test_the_bulk_report_pages_and_keeps_only_its_limit(setup: Any) -> None:
    s = setup()
    est = s.driver("est")
    for n in range(5):
        assert (await est.enroll(cn=HOST.format(n), dns=[HOST.format(n)])).cert is not None
    ctx = s.h.ctx
    shorter = {**ctx.authority.profiles}
    import dataclasses

    shorter["p"] = dataclasses.replace(shorter["p"], validity=86400)
    report = profile_drift.check_profile(ctx.db, shorter, "p", ctx.clock.now(), limit=2,
                                         page=2)
    assert (report.checked, report.differing, len(report.certificates)) == (5, 5, 2)
    assert report.truncated
    assert report.certificates[0].serial < report.certificates[1].serial
    same = profile_drift.check_profile(ctx.db, ctx.authority.profiles, "p",
                                       ctx.clock.now(), page=2)
    assert (same.checked, same.differing) == (5, 0)
    done = s.cli("certs", "check", "--profile", "p", "--limit", "1",
                 config=s.config_file(validity="1d"))
    assert done.stdout.splitlines()[-1] == \
        "5 live certificate(s) of profile p checked, 5 differ, first 1 listed"


def test_bad_arguments(setup: Any) -> None:
    s = setup()
    assert s.cli("certs", "check").returncode == 1
    done = s.cli("certs", "check", "abc123")
    assert done.returncode == 1 and "no certificate" in done.stderr
    assert "no profile named" in s.cli("certs", "check", "--profile", "zz").stderr
