"""The `enroll` CLI as an operator runs it (subprocess, `--data-dir`)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from enroll.approvals import os_user
from enroll.context import AppContext
from enroll.model import Issued, Pending
from enroll.testing import make_csr, request

Run = Callable[..., subprocess.CompletedProcess[str]]
MANUAL = {"ENROLL_PROFILES__DEVICE__APPROVAL": "manual"}


def test_ca_list_json_and_table(data_dir: Path, run_cli: Run) -> None:
    rows = json.loads(run_cli(data_dir, "ca", "list", "--json").stdout)
    assert [(r["name"], r["parent"], r["backend"]) for r in rows] == [
        ("root", "", "local"), ("issuing", "root", "local"), ("scep", "root", "local")]
    assert rows[1]["subject"] == "CN=enroll Issuing CA,O=enroll"
    dt.datetime.fromisoformat(rows[0]["not_after"])
    table = run_cli(data_dir, "ca", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "SUBJECT", "PARENT", "BACKEND", "NOT_AFTER"]
    assert table[2].startswith("root ")


def test_requests_list_approve_reject_and_audit_export(
        data_dir: Path, run_cli: Run, open_data_dir: Callable[..., AppContext]) -> None:
    ctx = open_data_dir(data_dir, MANUAL)
    first = ctx.authority.submit(request(make_csr(cn="one.example.com"), protocol="scep"))
    second = ctx.authority.submit(request(make_csr(cn="two.example.com"), protocol="est"))
    assert isinstance(first, Pending) and isinstance(second, Pending)

    listed = json.loads(run_cli(data_dir, "requests", "list", "--json", env=MANUAL).stdout)
    assert {r["id"] for r in listed} == {first.request_id, second.request_id}
    assert {r["status"] for r in listed} == {"pending"}
    assert {r["subject"] for r in listed} == {"CN=one.example.com", "CN=two.example.com"}

    approved = run_cli(data_dir, "requests", "approve", first.request_id, "--actor", "alice",
                       env=MANUAL)
    assert approved.stdout.startswith(f"approved {first.request_id}: issued certificate ")
    serial = approved.stdout.split()[-1]
    issued = ctx.authority.status(first.request_id)
    assert isinstance(issued, Issued) and issued.serial_hex == serial

    again = run_cli(data_dir, "requests", "approve", first.request_id, env=MANUAL, check=False)
    assert again.returncode == 1
    assert again.stderr.strip() == "error: request is issued, not pending"

    rejected = run_cli(data_dir, "requests", "reject", second.request_id, "--reason",
                       "unknown device", "--actor", "bob", env=MANUAL)
    assert rejected.stdout.strip() == f"rejected {second.request_id}"
    assert run_cli(data_dir, "requests", "list", env=MANUAL).stdout.strip() == "(none)"

    lines = run_cli(data_dir, "audit", "export", "--since", "1h").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    decisions = [(e["type"], e["actor"], e["request_id"]) for e in events
                 if e["type"] in ("request.approved", "request.rejected")]
    # The CLI records the OS account that ran it with the claimed --actor.
    me = f"os-user:{os_user()}"
    assert decisions == [("request.approved", f"{me} as alice", first.request_id),
                         ("request.rejected", f"{me} as bob", second.request_id)]
    now = dt.datetime.now(dt.UTC)
    for e in events:
        assert now - dt.timedelta(hours=1) <= dt.datetime.fromisoformat(e["at"]) <= now
    issued_event = next(e for e in events if e["type"] == "certificate.issued")
    assert issued_event["serial"] == serial
    assert [e for e in events if e["type"] == "request.rejected"][0]["details"] == {
        "reason": "unknown device"}


def test_certs_list_show_revoke_and_crl_out(
        data_dir: Path, run_cli: Run, open_data_dir: Callable[..., AppContext],
        tmp_path: Path) -> None:
    ctx = open_data_dir(data_dir)
    issued = ctx.authority.submit(request(make_csr(cn="c.example.com", dns=["c.example.com"]),
                                          "server", protocol="acme"))
    assert isinstance(issued, Issued)

    listed = json.loads(run_cli(data_dir, "certs", "list", "--json").stdout)
    assert [(c["serial"], c["status"], c["profile"], c["protocol"]) for c in listed] == [
        (issued.serial_hex, "valid", "server", "acme")]

    # Operators paste serials as openssl prints them: upper case, zero-padded.
    pasted = issued.serial_hex.upper().zfill(34)
    run_cli(data_dir, "certs", "revoke", pasted, "--reason", "superseded", "--actor", "carol")
    shown = json.loads(run_cli(data_dir, "certs", "show", issued.serial_hex, "--json").stdout)
    assert (shown["status"], shown["revocation_reason"], shown["sans"]) == (
        "revoked", "superseded", "dns:c.example.com")

    crl_path = tmp_path / "issuing.crl"
    run_cli(data_dir, "crl", "--ca", "issuing", "--out", str(crl_path))
    crl = x509.load_der_x509_crl(crl_path.read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(issued.certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is \
        x509.ReasonFlags.superseded
    assert crl.is_signature_valid(issued.chain[0].public_key())  # type: ignore[arg-type]

    missing = run_cli(data_dir, "certs", "show", "abcdef", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no certificate with this serial"
    garbage = run_cli(data_dir, "certs", "revoke", "not-hex", check=False)
    assert garbage.returncode == 1
    assert garbage.stderr.strip() == "error: not a serial number: 'not-hex'"


def test_bad_config_stops_the_cli_with_the_dotted_key(data_dir: Path, run_cli: Run) -> None:
    done = run_cli(data_dir, "ca", "list", env={"ENROLL_PROFILES__DEVICE__VALIDITY": "soon"},
                   check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("configuration error: profiles.device.validity:")
    assert "Traceback" not in done.stderr
