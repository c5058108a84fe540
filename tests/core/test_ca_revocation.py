"""Every CA certificate is a certificate row: revocable by the operator, listed on the
parent's CRL, answered revoked by OCSP, and a revoked CA issues nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from enroll import config as config_mod
from enroll.context import AppContext, build_context
from enroll.errors import Conflict, PolicyDenied
from enroll.model import CertificateStatus, Issued, Pending, RequestStatus
from enroll.store import queries
from enroll.testing import make_csr, request

Counts = Callable[[AppContext], tuple[int, int]]
Run = Callable[..., subprocess.CompletedProcess[str]]


def ca_serial(ctx: AppContext, name: str) -> str:
    return format(ctx.cas.get(name).certificate.serial_number, "x")


def ocsp_status(ctx: AppContext, cert: x509.Certificate, issuer: x509.Certificate) -> str:
    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build() \
        .public_bytes(serialization.Encoding.DER)
    return ocsp.load_der_ocsp_response(ctx.ocsp.respond(der)).certificate_status.name


def test_both_ca_certificates_are_stored_under_their_issuer(context: AppContext) -> None:
    root = context.authority.certificate(ca_serial(context, "root"))
    issuing = context.authority.certificate(ca_serial(context, "issuing"))
    assert root is not None and issuing is not None
    assert (root.ca, issuing.ca) == ("root", "root")
    assert issuing.certificate == context.cas.get("issuing").certificate
    assert (issuing.protocol, issuing.profile, issuing.status) == (
        "ca", "ca:issuing", CertificateStatus.VALID)
    # Never a client credential, never counted or listed as an issued certificate.
    assert context.authority.lookup(issuing.certificate) is None
    with context.db.read() as tx:
        assert queries.count_certificates(tx) == 0
        assert queries.list_certificates(tx) == []
        # The root's and each issuing CA's (`issuing`, and `scep`: RSA, for SCEP).
        assert len(queries.list_certificates(tx, include_ca=True)) == len(context.cas.names())


def test_a_data_dir_from_before_is_backfilled_at_the_next_start(
        make_config: Callable[..., config_mod.Config]) -> None:
    config = make_config()
    ctx = build_context(config)
    with ctx.db.write() as tx:  # what an older version left: CAs but no rows
        tx.run("DELETE FROM certificates")
    ctx.db.dispose()
    again = build_context(config)
    try:
        assert again.authority.certificate(ca_serial(again, "issuing")) is not None
        with again.db.read() as tx:
            types = [e.type for e in queries.list_audit(tx)]
        # twice each (root, issuing, scep): first start, backfill
        assert types.count("ca.certificate_stored") == 2 * len(config.cas)
    finally:
        again.db.dispose()


def test_a_revoked_intermediate_is_on_the_roots_crl_ocsp_says_revoked_issuance_refused(
        context: AppContext, stored: Counts) -> None:
    before = context.authority.submit(request(make_csr(), "device"))
    assert isinstance(before, Issued)
    issuing = context.cas.get("issuing").certificate
    root = context.cas.get("root").certificate
    assert ocsp_status(context, issuing, root) == "GOOD"
    context.authority.revoke(ca_serial(context, "issuing"), x509.ReasonFlags.ca_compromise,
                             "operator")
    crl = x509.load_der_x509_crl(context.crls.current("root"))
    entry = crl.get_revoked_certificate_by_serial_number(issuing.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is \
        x509.ReasonFlags.ca_compromise
    assert crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    assert ocsp_status(context, issuing, root) == "REVOKED"
    # No new certificate from it, and nothing stored for the refusal.
    with pytest.raises(PolicyDenied, match="'issuing' cannot issue: its certificate is revoked"):
        context.authority.submit(request(make_csr(), "device"))
    assert stored(context) == (1, 1)
    # Certificates it issued before stay as they were (revoke them one by one if need be).
    assert context.authority.certificate(before.serial_hex).status is CertificateStatus.VALID  # type: ignore[union-attr]
    with pytest.raises(Conflict):
        context.authority.revoke(ca_serial(context, "issuing"), x509.ReasonFlags.unspecified,
                                 "operator")


def test_a_revoked_root_stops_its_intermediates_and_an_approval(
        make_config: Callable[..., config_mod.Config], stored: Counts) -> None:
    ctx = build_context(make_config(profiles={"device": {
        "ca": "issuing", "approval": "manual", "key_usage": ["digital_signature"],
        "extended_key_usage": ["client_auth"], "subject": {"CN": "required"}}}))
    try:
        waiting = ctx.authority.submit(request(make_csr(cn="w"), "device"))
        assert isinstance(waiting, Pending)
        ctx.authority.revoke(ca_serial(ctx, "root"), x509.ReasonFlags.key_compromise, "op")
        with pytest.raises(PolicyDenied, match="issuer's"):
            ctx.authority.approve(waiting.request_id, "alice")
        assert ctx.authority.request(waiting.request_id).status is RequestStatus.PENDING  # type: ignore[union-attr]
        assert stored(ctx) == (0, 1)
    finally:
        ctx.db.dispose()


def test_enroll_ca_revoke(data_dir: Path, run_cli: Run) -> None:
    rows = {r["name"]: r for r in json.loads(run_cli(data_dir, "ca", "list", "--json").stdout)}
    assert rows["issuing"]["status"] == "valid"
    done = run_cli(data_dir, "ca", "revoke", "issuing")
    assert "listed on the CRL of root" in done.stdout
    rows = {r["name"]: r for r in json.loads(run_cli(data_dir, "ca", "list", "--json").stdout)}
    assert (rows["issuing"]["status"], rows["root"]["status"]) == ("revoked", "valid")
    crl = x509.load_der_x509_crl(_crl(run_cli, data_dir))
    assert crl.get_revoked_certificate_by_serial_number(
        int(rows["issuing"]["serial"], 16)) is not None
    again = run_cli(data_dir, "ca", "revoke", "issuing", check=False)
    assert again.returncode != 0 and "already revoked" in again.stderr
    missing = run_cli(data_dir, "ca", "revoke", "nope", check=False)
    assert missing.returncode != 0 and "no CA named 'nope'" in missing.stderr


def _crl(run_cli: Run, data_dir: Path) -> bytes:
    out = data_dir / "root.crl"
    run_cli(data_dir, "crl", "--ca", "root", "--out", str(out))
    return out.read_bytes()
