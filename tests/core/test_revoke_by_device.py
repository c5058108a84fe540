"""Revocation by identity, requester or device: ``enroll certs revoke --device-id`` on a
real data dir, and `Authority.revoke_all` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from enroll import bulk_revocation
from enroll.context import AppContext
from enroll.errors import Conflict, MalformedInput
from enroll.model import CertificateStatus, Issued, Requester
from enroll.testing import make_csr, request

Run = Callable[..., Any]


def issue(ctx: AppContext, cn: str, protocol: str, device_id: str | None = None,
          requester: str = "test") -> str:
    outcome = ctx.authority.submit(request(make_csr(cn=cn), protocol=protocol,
                                           device_id=device_id,
                                           requester=Requester(requester, "password")))
    assert isinstance(outcome, Issued)
    return outcome.serial_hex


def crl_serials(ctx: AppContext) -> set[str]:
    crl = x509.load_der_x509_crl(ctx.crls.current("issuing"))
    return {format(r.serial_number, "x") for r in crl}


def test_cli_revokes_a_device_across_protocols_with_a_dry_run_first(
        data_dir: Path, run_cli: Run, open_data_dir: Callable[..., AppContext]) -> None:
    ctx = open_data_dir(data_dir)
    mine = {issue(ctx, "laptop-1", door, device_id="SN-1001") for door in ("scep", "est",
                                                                             "acme")}
    other = issue(ctx, "laptop-2", "est", device_id="SN-1002")

    dry = json.loads(run_cli(data_dir, "certs", "revoke", "--device-id", "SN-1001",
                             "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True
    assert {c["serial"] for c in dry["certificates"]} == mine
    assert {c["protocol"] for c in dry["certificates"]} == {"scep", "est", "acme"}
    assert {c["status"] for c in dry["certificates"]} == {"valid"}
    assert all(ctx.authority.certificate(s).status is CertificateStatus.VALID for s in mine)
    table = run_cli(data_dir, "certs", "revoke", "--device-id", "SN-1001",
                    "--dry-run").stdout.splitlines()
    assert table[0].split() == ["SERIAL", "STATUS", "PROTOCOL", "IDENTITY", "DEVICE_ID",
                                "NOT_AFTER"]
    assert table[-1] == "3 certificate(s) would be revoked (dry run) (unspecified)"

    done = run_cli(data_dir, "certs", "revoke", "--device-id", "SN-1001", "--reason",
                   "cessation_of_operation", "--actor", "alice")
    assert done.stdout.splitlines()[-1] == \
        "3 certificate(s) revoked (cessation_of_operation)"
    for serial in mine:
        record = ctx.authority.certificate(serial)
        assert record.status is CertificateStatus.REVOKED
        assert record.revocation_reason is x509.ReasonFlags.cessation_of_operation
    assert ctx.authority.certificate(other).status is CertificateStatus.VALID
    assert mine <= crl_serials(ctx) and other not in crl_serials(ctx)

    events = [json.loads(line) for line in
              run_cli(data_dir, "audit", "export", "--since", "1h").stdout.splitlines()]
    revoked = [e for e in events if e["type"] == "certificate.revoked"]
    assert {e["serial"] for e in revoked} == mine
    assert all(e["details"]["selector"] == [{"device_id": "SN-1001"}] for e in revoked)
    [summary] = [e for e in events if e["type"] == "certificates.revoked"]
    assert summary["details"]["count"] == 3 and summary["actor"].endswith(" as alice")

    # Nothing live is left: an empty answer, not an error.
    again = run_cli(data_dir, "certs", "revoke", "--device-id", "SN-1001", "--json")
    assert json.loads(again.stdout)["certificates"] == []


def test_cli_by_identity_and_requester_and_its_refusals(
        data_dir: Path, run_cli: Run, open_data_dir: Callable[..., AppContext]) -> None:
    ctx = open_data_dir(data_dir)
    a1, a2 = issue(ctx, "host-a", "est"), issue(ctx, "host-a", "scep")
    b = issue(ctx, "host-b", "acme", requester="bob")
    identity = ctx.authority.certificate(a1).identity
    assert identity is not None and ctx.authority.certificate(a2).identity == identity
    by_identity = json.loads(run_cli(data_dir, "certs", "revoke", "--identity", identity,
                                     "--json").stdout)
    assert {c["serial"] for c in by_identity["certificates"]} == {a1, a2}
    assert {c["status"] for c in by_identity["certificates"]} == {"revoked"}
    with ctx.db.read() as tx:
        assert tx.scalar("SELECT status FROM identities WHERE identity = ?",
                         (identity,)) == "revoked"
    by_requester = json.loads(run_cli(data_dir, "certs", "revoke", "--requester", "bob",
                                      "--json").stdout)
    assert [c["serial"] for c in by_requester["certificates"]] == [b]

    for args in ((), (a1, "--device-id", "x"), ("--identity", "i", "--requester", "r")):
        bad = run_cli(data_dir, "certs", "revoke", *args, check=False)
        assert bad.returncode == 1, args
        assert bad.stderr.strip() == ("error: give a serial or exactly one of --identity, "
                                      "--requester, --device-id")
    # The one-serial form still works (and --json).
    c = issue(ctx, "host-c", "est")
    one = json.loads(run_cli(data_dir, "certs", "revoke", c, "--json").stdout)
    assert (one["serial"], one["status"]) == (c, "revoked")


def test_revoke_all_is_bounded_one_transaction_and_dry_run_writes_nothing(
        context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    authority = context.authority
    serials = {issue(context, f"d-{i}", "est", device_id="fleet-7") for i in range(3)}
    with context.db.read() as tx:
        before = tx.scalar("SELECT count(*) FROM audit_events")
    listed = authority.revoke_all(device_id="fleet-7", reason=x509.ReasonFlags.superseded,
                                  actor="test", dry_run=True)
    assert {r.serial_hex for r in listed} == serials
    with context.db.read() as tx:
        assert tx.scalar("SELECT count(*) FROM audit_events") == before

    monkeypatch.setattr(bulk_revocation, "MAX_REVOKED", 2)
    with pytest.raises(Conflict, match="more than 2 live certificates match"):
        authority.revoke_all(device_id="fleet-7", reason=x509.ReasonFlags.superseded,
                             actor="test")
    assert all(authority.certificate(s).status is CertificateStatus.VALID for s in serials)

    with pytest.raises(MalformedInput, match="exactly one"):
        authority.revoke_all(device_id="fleet-7", identity="x",
                             reason=x509.ReasonFlags.superseded, actor="test")
    with pytest.raises(MalformedInput, match="removeFromCRL"):
        authority.revoke_all(device_id="fleet-7", reason=x509.ReasonFlags.remove_from_crl,
                             actor="test")

    # A failure inside the transaction (here: the caller's `within`) revokes nothing.
    def boom(tx: Any) -> None:
        raise RuntimeError("abort")

    monkeypatch.setattr(bulk_revocation, "MAX_REVOKED", 3)
    with pytest.raises(RuntimeError):
        authority.revoke_selected((bulk_revocation.Selector("device_id", "fleet-7"),),
                                  x509.ReasonFlags.superseded, "test", within=boom)
    assert all(authority.certificate(s).status is CertificateStatus.VALID for s in serials)
    revoked = authority.revoke_all(device_id="fleet-7", reason=x509.ReasonFlags.superseded,
                                   actor="test")
    assert {r.serial_hex for r in revoked} == serials
    assert {r.status for r in revoked} == {CertificateStatus.REVOKED}
