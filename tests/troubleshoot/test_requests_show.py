"""``enroll requests show ID``: a request's trail — door, requester and how it
authenticated, rules, each plugin's vote, approvals, signing and the answer — for
requests issued, denied by a policy plugin, rejected by an operator, and held then
approved by two approvers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from door_drivers import DOORS
from trouble_policy import DENY_REASON, HOLD_REASON

from enroll.store import queries

AUTH = {"scep": ("scep:default", "challenge"), "est": ("est-user:default:alice", "basic"),
        "acme": ("acme-account:", "jws")}


def show(s: Any, request_id: str) -> tuple[str, dict[str, Any]]:
    text = s.cli("requests", "show", request_id)
    assert text.returncode == 0, text.stderr
    as_json = s.cli("requests", "show", request_id, "--json")
    return text.stdout, json.loads(as_json.stdout)


def steps(trail: dict[str, Any], kind: str) -> list[str]:
    return [s["summary"] for s in trail["steps"] if s["step"] == kind]


@pytest.mark.parametrize("door", DOORS)
async def test_an_issued_request_shows_its_door_votes_signing_and_answer(
        door: str, setup: Any) -> None:
    s = setup()
    host = f"scale-{door}.corp.example"
    answer = await s.driver(door).enroll(cn=host, dns=[host])
    assert answer.cert is not None, answer
    serial = format(answer.cert.serial_number, "x")
    [record] = [r for r in s.h.ctx.authority.list_requests() if r.certificate_serial == serial]
    text, trail = show(s, record.id)
    who, method = AUTH[door]
    assert trail["status"] == "issued" and trail["protocol"] == door
    assert trail["requester"].startswith(who) and trail["auth_method"] == method
    [auth] = steps(trail, "authentication")
    assert auth.startswith(f"{door} endpoint default: {who}") and f"({method})" in auth
    assert steps(trail, "votes") == ["trouble_policy: allow; approved automatically"]
    [signed] = steps(trail, "signing")
    assert signed.startswith(f"issued {serial} by CA issuing")
    assert trail["answer"] == f"certificate {serial}"
    assert f"answer       certificate {serial}" in text
    assert f"door         {door} endpoint default" in text


async def test_a_request_denied_by_a_plugin_shows_the_plugin_and_its_reason(
        setup: Any) -> None:
    s = setup()
    refused = await s.driver("est").enroll(cn="deny-9.corp.example",
                                           dns=["deny-9.corp.example"])
    assert refused.cert is None and refused.error == "403", refused
    with s.h.ctx.db.read() as tx:
        [event] = [e for e in queries.list_audit(tx) if e.type == "request.denied"]
    assert event.request_id is not None
    text, trail = show(s, event.request_id)
    assert trail["status"] == "denied" and trail["reason"] == DENY_REASON
    assert trail["requester"] == "est-user:default:alice" and trail["auth_method"] == "basic"
    assert trail["subject"] == "CN=deny-9.corp.example"
    assert trail["sans"] == ["dns:deny-9.corp.example"]
    assert steps(trail, "votes") == [
        f"trouble_policy: deny ({DENY_REASON}); denied"]
    assert trail["answer"] == f"refused: {DENY_REASON}"
    assert f"reason       {DENY_REASON}" in text
    assert "trouble_policy: deny" in text


async def test_a_rejected_request_shows_the_operator_and_the_reason(setup: Any) -> None:
    s = setup()
    held = await s.driver("est").enroll(cn="hold-1.corp.example", dns=["hold-1.corp.example"])
    assert held.error == "202", held
    [pending] = json.loads(s.cli("requests", "list", "--json").stdout)
    done = s.cli("requests", "reject", pending["id"], "--reason", "not in the CMDB",
                 "--actor", "carol")
    assert done.returncode == 0, done.stderr
    text, trail = show(s, pending["id"])
    assert trail["status"] == "rejected" and trail["reason"] == "not in the CMDB"
    assert steps(trail, "votes") == [
        f"trouble_policy: pending ({HOLD_REASON}); held for approval: {HOLD_REASON}"]
    [rejection] = [st for st in trail["steps"] if st["step"] == "rejection"]
    assert rejection["summary"] == "not in the CMDB"
    assert rejection["actor"].endswith(" as carol")
    assert trail["answer"] == "rejected: not in the CMDB"
    assert "rejected: not in the CMDB" in text


async def test_a_held_then_approved_request_shows_both_approvals(setup: Any) -> None:
    s = setup({"approval": "manual", "approvals_required": 2})
    held = await s.driver("est").enroll(cn="till-4.corp.example", dns=["till-4.corp.example"])
    assert held.error == "202", held
    [pending] = json.loads(s.cli("requests", "list", "--json").stdout)
    _, trail = show(s, pending["id"])
    assert trail["answer"] == "pending (profile requires manual approval; 0 of 2 " \
                              "approvals): the client polls"
    for actor in ("alice-officer", "bob-officer"):
        done = s.cli("requests", "approve", pending["id"], "--actor", actor)
        assert done.returncode == 0, done.stderr
    text, trail = show(s, pending["id"])
    assert trail["status"] == "issued"
    assert [a["approver"].rpartition(" as ")[2] for a in trail["approvals"]] == [
        "alice-officer", "bob-officer"]
    approvals = steps(trail, "approval")
    assert approvals[0].startswith("approval 1 of 2 (")
    assert approvals[1].startswith("approval 2 of 2 (") and approvals[1].endswith("; approved")
    assert steps(trail, "votes") == [
        "trouble_policy: allow; held for approval: profile requires manual approval"]
    serial = trail["certificate_serial"]
    assert steps(trail, "signing")[0].startswith(f"issued {serial}")
    assert [st["step"] for st in trail["steps"]] == [
        "authentication", "rules", "votes", "approval", "approval", "signing"]
    assert "as alice-officer at " in text and "as bob-officer at " in text


def test_an_unknown_id_is_not_found(setup: Any) -> None:
    s = setup()
    done = s.cli("requests", "show", "00000000-0000-0000-0000-000000000000")
    assert done.returncode == 1 and "no request" in done.stderr
