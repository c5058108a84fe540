"""``enroll profiles check --profile X req.csr``: every rule's and every plugin's
verdict, the decision, and the certificate the engine would build, with nothing stored
and nothing signed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from door_drivers import DOORS
from trouble_policy import DENY_REASON, HOLD_REASON

from enroll.testing import make_csr, make_key

HOST = "kiosk-7.corp.example"


def write_csr(tmp: Path, name: str, *, der: bool = False, **fields: Any) -> Path:
    csr = make_csr(make_key(), **fields)
    path = tmp / name
    path.write_bytes(csr.public_bytes(serialization.Encoding.DER if der
                                      else serialization.Encoding.PEM))
    return path


def test_a_csr_a_profile_rule_refuses_shows_the_rule_and_its_reason_and_stores_nothing(
        setup: Any, tmp_path: Path) -> None:
    s = setup()
    csr = write_csr(tmp_path, "bad.csr", cn="www.bank.example", dns=["www.bank.example"])
    before = s.row_counts()
    done = s.cli("profiles", "check", "--profile", "p", str(csr))
    assert done.returncode == 3, done.stderr
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()}
    line = rows["profile rule: subject alternative names"]
    assert "refused" in line and "www.bank.example" in line and "not allowed" in line
    assert "passed" in rows["profile rule: key type and size"]
    assert "not run" in rows["profile rule: subject"]
    assert "decision: would refuse: " in done.stdout
    assert "policy votes: none" in done.stdout  # no plugin votes on a refused request
    assert "certificate it would get" not in done.stdout
    assert s.row_counts() == before

    as_json = json.loads(s.cli("profiles", "check", "--profile", "p", str(csr),
                               "--json").stdout)
    assert as_json["decision"] == "would refuse"
    [refused] = [v for v in as_json["steps"] if v["verdict"] == "refused"]
    assert refused["rule"] == "profile rule: subject alternative names"
    assert as_json["reason"] == refused["reason"]
    assert as_json["certificate"] is None


def test_a_der_csr_with_a_key_the_profile_refuses(setup: Any, tmp_path: Path) -> None:
    s = setup({"key_types": ["rsa-2048"]})
    csr = write_csr(tmp_path, "ec.der", der=True, cn=HOST, dns=[HOST])
    out = json.loads(s.cli("profiles", "check", "--profile", "p", str(csr), "--json").stdout)
    [refused] = [v for v in out["steps"] if v["verdict"] == "refused"]
    assert refused["rule"] == "profile rule: key type and size"
    assert "ec-p256 is not allowed" in refused["reason"]
    # The other rules still ran: the operator sees everything wrong at once.
    assert {v["rule"]: v["verdict"] for v in out["steps"]}["profile rule: identity"] \
        == "passed"


@pytest.mark.parametrize("door", DOORS)
async def test_the_certificate_shown_is_the_one_the_door_then_issues(
        door: str, setup: Any, tmp_path: Path) -> None:
    s = setup()
    key = make_key()
    csr = make_csr(key, cn=HOST, dns=[HOST])
    path = tmp_path / "ok.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    before = s.row_counts()
    done = s.cli("profiles", "check", "--profile", "p", "--protocol", door, str(path),
                 "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert s.row_counts() == before  # nothing stored, not even an audit event
    assert out["decision"] == "would issue"
    assert {v["verdict"] for v in out["steps"]} == {"passed"}
    assert out["votes"] == [{"plugin": "trouble_policy", "vote": "allow", "reason": ""}]
    shown = out["certificate"]

    answer = await s.driver(door).enroll(key=key, cn=HOST, dns=[HOST])
    assert answer.cert is not None, answer
    cert = answer.cert
    assert shown["subject"] == cert.subject.rfc4514_string()
    assert shown["sans"] == [f"dns:{HOST}"]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert shown["key_usage"] == ["digital_signature"] and ku.digital_signature
    assert not ku.key_encipherment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert shown["extended_key_usage"] == ["server_auth", "client_auth"]
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                         x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert shown["validity_seconds"] == int(
        (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds())
    assert shown["ca"] == "issuing"
    assert cert.issuer == s.h.ctx.cas.get("issuing").certificate.subject
    assert shown["extensions"] == [
        getattr(e.oid, "_name", "") for e in cert.extensions
        if e.oid != x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER]


def test_each_plugin_vote_and_the_decision(setup: Any, tmp_path: Path) -> None:
    s = setup()
    denied = write_csr(tmp_path, "deny.csr", cn="deny-3.corp.example",
                       dns=["deny-3.corp.example"])
    done = s.cli("profiles", "check", "--profile", "p", str(denied))
    assert done.returncode == 3
    [vote] = [line for line in done.stdout.splitlines() if line.startswith("trouble_policy")]
    assert "deny" in vote and DENY_REASON in vote
    assert f"decision: would refuse: {DENY_REASON}" in done.stdout
    # The certificate the rules allow is still shown (what a policy change would issue).
    assert "certificate it would get (not signed):" in done.stdout

    held = write_csr(tmp_path, "hold.csr", cn="hold-3.corp.example",
                     dns=["hold-3.corp.example"])
    done = s.cli("profiles", "check", "--profile", "p", str(held))
    assert done.returncode == 0
    assert f"decision: would wait for approval (1 approver(s)): {HOLD_REASON}" in done.stdout


def test_a_manual_profile_would_wait_and_a_missing_profile_is_an_error(
        setup: Any, tmp_path: Path) -> None:
    s = setup({"approval": "manual", "approvals_required": 2})
    csr = write_csr(tmp_path, "ok.csr", cn=HOST, dns=[HOST])
    out = json.loads(s.cli("profiles", "check", "--profile", "p", str(csr), "--json").stdout)
    assert (out["decision"], out["reason"], out["approvals_required"]) == (
        "would wait for approval", "profile requires manual approval", 2)
    done = s.cli("profiles", "check", "--profile", "nope", str(csr))
    assert done.returncode == 1 and "no profile named 'nope'" in done.stderr
    (tmp_path / "junk.csr").write_bytes(b"not a csr")
    done = s.cli("profiles", "check", "--profile", "p", str(tmp_path / "junk.csr"))
    assert done.returncode == 1 and "not a PKCS#10" in done.stderr


async def test_the_three_commands_need_no_ca_passphrase(setup: Any, tmp_path: Path) -> None:
    s = setup()
    answer = await s.driver("est").enroll(cn=HOST, dns=[HOST])
    assert answer.cert is not None
    serial = format(answer.cert.serial_number, "x")
    [record] = [r for r in s.h.ctx.authority.list_requests() if r.certificate_serial == serial]
    csr = write_csr(tmp_path, "ok.csr", cn=HOST, dns=[HOST])
    config = s.config_file()
    text = config.read_text()
    assert "ca_passphrase_file" in text
    config.write_text("\n".join(line for line in text.splitlines()
                                if not line.startswith("ca_passphrase_file")))
    checked = s.cli("profiles", "check", "--profile", "p", str(csr), config=config)
    assert checked.returncode == 0, checked.stderr
    assert "decision: would issue" in checked.stdout
    assert s.cli("certs", "check", format(answer.cert.serial_number, "x"),
                 config=config).returncode == 0
    assert s.cli("requests", "show", record.id, config=config).returncode == 0
    # A command that signs does need it (so the file above really lacks it).
    done = s.cli("requests", "approve", record.id, config=config)
    assert done.returncode == 2 and "ca_passphrase" in done.stderr
