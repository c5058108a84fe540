"""The key blocklist in the core: fed by keyCompromise revocations (same transaction,
``key.blocked`` audit event), by the operator CLI, and enforced by the pipeline. The
same rule through SCEP, EST and ACME is in tests/protocols/test_key_rules_doors.py."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enroll import key_blocklist
from enroll.approvals import os_user
from enroll.context import AppContext
from enroll.crypto.keys import spki_sha256
from enroll.embedded import init_data_dir
from enroll.errors import BadCSR, MalformedInput
from enroll.model import Issued
from enroll.plugin_loader import build_plugin_manager
from enroll.store import queries
from enroll.testing import make_csr, make_key, request

Run = Callable[..., subprocess.CompletedProcess[str]]


def _issue(ctx: AppContext, key: object, cn: str = "k.example.com") -> Issued:
    issued = ctx.authority.submit(request(make_csr(key, cn=cn)))  # type: ignore[arg-type]
    assert isinstance(issued, Issued)
    return issued


def _events(ctx: AppContext, kind: str) -> list[dict[str, object]]:
    with ctx.db.read() as tx:
        return [{"actor": e.actor, "serial": e.serial_hex, **e.details}
                for e in queries.list_audit(tx) if e.type == kind]


def _counts(ctx: AppContext) -> tuple[int, int]:
    with ctx.db.read() as tx:
        return queries.count_certificates(tx), queries.count_requests(tx)


def test_key_compromise_revocation_blocks_the_key_for_every_later_request(
        build: Callable[..., AppContext]) -> None:
    ctx = build()
    key = make_key()
    fingerprint = spki_sha256(key.public_key())
    first = _issue(ctx, key)
    second = _issue(ctx, key, "again.example.com")  # the same key twice: allowed until…
    ctx.authority.revoke(first.serial_hex, x509.ReasonFlags.key_compromise, "alice")
    with ctx.db.read() as tx:
        assert key_blocklist.is_blocked(tx, fingerprint)
        [entry] = key_blocklist.list_blocked(tx)
    assert (entry.spki_sha256, entry.source, entry.serial, entry.actor) == (
        fingerprint, "revocation", first.serial_hex, "alice")
    assert _events(ctx, "key.blocked") == [{
        "actor": "alice", "serial": first.serial_hex, "spki_sha256": fingerprint,
        "source": "revocation",
        "reason": f"keyCompromise (certificate {first.serial_hex} revoked)"}]

    before = _counts(ctx)
    with pytest.raises(BadCSR) as info:
        ctx.authority.submit(request(make_csr(key, cn="third.example.com")))
    assert info.value.detail == \
        f"this key is blocked: keyCompromise (certificate {first.serial_hex} revoked)"
    assert _counts(ctx) == before
    with pytest.raises(BadCSR, match="this key is blocked"):
        ctx.authority.check_public_key(key.public_key())

    # The other certificate of the key can still be revoked (for keyCompromise too);
    # the key is blocked once.
    ctx.authority.revoke(second.serial_hex, x509.ReasonFlags.key_compromise, "bob")
    assert len(_events(ctx, "key.blocked")) == 1
    _issue(ctx, make_key())  # other keys are not affected


def test_other_revocation_reasons_block_nothing(build: Callable[..., AppContext]) -> None:
    ctx = build()
    key = make_key()
    for reason in (x509.ReasonFlags.superseded, x509.ReasonFlags.unspecified,
                   x509.ReasonFlags.cessation_of_operation):
        ctx.authority.revoke(_issue(ctx, key).serial_hex, reason, "op")
    _issue(ctx, key)
    with ctx.db.read() as tx:
        assert key_blocklist.list_blocked(tx) == []


def test_block_and_unblock_are_idempotent_and_audited(build: Callable[..., AppContext]) -> None:
    ctx = build()
    key = make_key()
    fp = spki_sha256(key.public_key())
    now = ctx.clock.now()
    with ctx.db.write() as tx:
        assert key_blocklist.block(tx, fp, reason="lost", source="operator", actor="op",
                                   now=now)
        assert not key_blocklist.block(tx, fp, reason="again", source="operator",
                                       actor="op", now=now)
    with pytest.raises(BadCSR, match="this key is blocked: lost"):
        _issue(ctx, key)
    with ctx.db.write() as tx:
        assert key_blocklist.unblock(tx, fp, actor="op", now=now)
        assert not key_blocklist.unblock(tx, fp, actor="op", now=now)
    _issue(ctx, key)
    assert [e["reason"] for e in _events(ctx, "key.blocked")] == ["lost"]
    assert len(_events(ctx, "key.unblocked")) == 1


def test_fingerprints_are_parsed_strictly() -> None:
    fp = "ab" * 32
    assert key_blocklist.parse_fingerprint(":".join(["AB"] * 32)) == fp
    for bad in ("", "ab" * 31, "zz" * 32, fp + "00", "ab " * 32):
        with pytest.raises(MalformedInput):
            key_blocklist.parse_fingerprint(bad)


# -- the CLI ------------------------------------------------------------------------------

@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    assert init_data_dir(data, build_plugin_manager()) is not None
    return data


def test_cli_block_list_unblock_round_trip(data_dir: Path, run_cli: Run, tmp_path: Path,
                                           open_data_dir: Callable[..., AppContext]) -> None:
    ctx = open_data_dir(data_dir)
    key, csr_key = make_key(), make_key("rsa-2048")
    issued = _issue(ctx, key)
    cert_file = tmp_path / "leaf.pem"
    cert_file.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    fp, csr_fp = spki_sha256(key.public_key()), spki_sha256(csr_key.public_key())

    done = run_cli(data_dir, "keys", "block", "--cert", str(cert_file), "--reason", "lost laptop")
    assert done.stdout.strip() == f"blocked {fp}"
    again = run_cli(data_dir, "keys", "block", "--spki-sha256", fp.upper())
    assert again.stdout.strip() == f"already blocked {fp}"
    csr_file = tmp_path / "req.der"
    csr_file.write_bytes(make_csr(csr_key).public_bytes(serialization.Encoding.DER))
    run_cli(data_dir, "keys", "block", "--csr", str(csr_file), "--actor", "carol")

    listed = json.loads(run_cli(data_dir, "keys", "list", "--json").stdout)
    assert {(r["spki_sha256"], r["source"], r["reason"], r["actor"]) for r in listed} == {
        (fp, "operator", "lost laptop", f"os-user:{os_user()}"),
        (csr_fp, "operator", "blocked by an operator", f"os-user:{os_user()} as carol")}
    table = run_cli(data_dir, "keys", "list").stdout.splitlines()
    assert table[0].split() == ["SPKI_SHA256", "SOURCE", "REASON", "CREATED_AT"]

    before = _counts(ctx)
    with pytest.raises(BadCSR, match="this key is blocked: lost laptop"):
        _issue(ctx, key)
    assert _counts(ctx) == before

    assert run_cli(data_dir, "keys", "unblock", fp).stdout.strip() == f"unblocked {fp}"
    _issue(ctx, key)  # usable again
    missing = run_cli(data_dir, "keys", "unblock", fp, check=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, f"error: key {fp} is not blocked")
    bad = run_cli(data_dir, "keys", "unblock", "xyz", check=False)
    assert bad.returncode == 1 and "64 hex digits" in bad.stderr
    not_a_cert = run_cli(data_dir, "keys", "block", "--cert", str(csr_file), check=False)
    assert not_a_cert.returncode == 1 and "is not a certificate" in not_a_cert.stderr
    neither = run_cli(data_dir, "keys", "block", check=False)
    assert neither.returncode == 2  # argparse: one of --cert/--csr/--spki-sha256

    lines = run_cli(data_dir, "audit", "export").stdout.splitlines()
    kinds = [json.loads(line)["type"] for line in lines]
    assert kinds.count("key.blocked") == 2 and kinds.count("key.unblocked") == 1


def test_a_pending_request_whose_key_was_blocked_is_not_approved(
        build: Callable[..., AppContext]) -> None:
    ctx = build(extra_profiles={"manual": {"ca": "issuing", "approval": "manual",
                                           "san": {"dns": ["*"]}}})
    key = make_key()
    pending = ctx.authority.submit(request(make_csr(key, dns=["q.example.com"]), "manual"))
    assert not isinstance(pending, Issued)
    with ctx.db.write() as tx:
        key_blocklist.block(tx, spki_sha256(key.public_key()), reason="stolen",
                            source="operator", actor="op", now=ctx.clock.now())
    with pytest.raises(BadCSR, match="this key is blocked: stolen"):
        ctx.authority.approve(pending.request_id, "officer")
    record = ctx.authority.request(pending.request_id)
    assert record is not None and record.status.value == "pending"
    assert _counts(ctx) == (0, 1)
    ctx.authority.reject(pending.request_id, "officer", "key blocked")
