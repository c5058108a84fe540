"""bench/growth.py on a tiny store: the generator writes what the pipeline writes, the
revoked serials are exactly those on the CRL, OCSP tells revoked from good, and
`measure` runs end to end. No timings are asserted."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

BENCH = Path(__file__).resolve().parents[2] / "bench" / "growth.py"
CERTS, REVOKED = 2000, 200


@pytest.fixture(scope="module")
def growth() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_growth", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_growth"] = module
    spec.loader.exec_module(module)
    return module


def test_generate_then_crl_and_ocsp_answer_for_the_generated_serials(
        growth: ModuleType, db_url: str) -> None:
    done = growth.generate(db_url, CERTS, REVOKED, seed=7, batch_size=700)
    assert done.certificates == CERTS and len(set(done.revoked)) == REVOKED
    with growth.open_store(db_url) as ctx:
        with ctx.db.read() as tx:
            rows = [SimpleNamespace(**r) for r in tx.all(
                "SELECT serial, status, ca, request_id FROM certificates "
                "WHERE requester <> 'operator:bench' AND protocol <> 'ca'")]
            issued = {r["id"]: r["certificate_serial"] for r in tx.all(
                "SELECT id, certificate_serial FROM requests WHERE status = 'issued'")}
            audit = {r["type"]: r["n"] for r in tx.all(
                "SELECT type, COUNT(*) AS n FROM audit_events "
                "WHERE actor <> 'operator:bench' GROUP BY type")}
        assert len(rows) == CERTS == len({r.serial for r in rows})
        assert {r.serial for r in rows if r.status == "revoked"} == set(done.revoked)
        assert all(issued[r.request_id] == r.serial for r in rows)
        assert {r.ca for r in rows} == {name for name, _share in growth.ISSUING_CAS}
        assert audit["request.approved"] >= CERTS and audit["certificate.issued"] >= CERTS
        assert audit["certificate.revoked"] == REVOKED
        # The inventory: one row per identity, its count and a current certificate of
        # its own (a live one when it has any).
        with ctx.db.read() as tx:
            counts = {r["identity"]: r["n"] for r in tx.all(
                "SELECT identity, COUNT(*) AS n FROM certificates "
                "WHERE protocol <> 'ca' AND identity IS NOT NULL GROUP BY identity")}
            inventory = {r["identity"]: r for r in tx.all(
                "SELECT i.identity, i.certificates, i.status, c.identity AS owner "
                "FROM identities i JOIN certificates c ON c.serial = i.serial")}
            live = {r["identity"] for r in tx.all(
                "SELECT DISTINCT identity FROM certificates WHERE status = 'valid' "
                "AND not_after > ? AND protocol <> 'ca'", (tx.when(ctx.clock.now()),))}
        assert {i: r["certificates"] for i, r in inventory.items()} == counts
        assert all(r["owner"] == i for i, r in inventory.items())
        assert {i for i, r in inventory.items() if r["status"] == "revoked"}.isdisjoint(live)

        crl = x509.load_der_x509_crl(ctx.crls.regenerate(growth.PRIMARY_CA))
        assert {format(e.serial_number, "x") for e in crl} == set(done.revoked)
        assert crl.is_signature_valid(ctx.cas.get(growth.PRIMARY_CA).certificate.public_key())
        for name, _share in growth.ISSUING_CAS[1:]:
            assert len(x509.load_der_x509_crl(ctx.crls.regenerate(name))) == 0

        sample = random.Random(3).sample(rows, 60)  # noqa: S311 - not for crypto
        for r in sample:
            der = ctx.ocsp.respond(growth.ocsp_request(ctx, r.ca, r.serial))
            resp = ocsp.load_der_ocsp_response(der)
            assert resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
            assert resp.serial_number == int(r.serial, 16)
            expected = (ocsp.OCSPCertStatus.REVOKED if r.status == "revoked"
                        else ocsp.OCSPCertStatus.GOOD)
            assert resp.certificate_status is expected
        # Every stored certificate is a real one of its CA, with the row's serial.
        for r in sample[:10]:
            rec = ctx.authority.certificate(r.serial)
            assert rec is not None and rec.certificate.serial_number == int(r.serial, 16)
            rec.certificate.verify_directly_issued_by(ctx.cas.get(r.ca).certificate)


def test_measure_runs_on_a_tiny_store(growth: ModuleType, db_url: str) -> None:
    growth.generate(db_url, 300, 30, seed=11)
    lines: list[str] = []
    results = growth.measure(db_url, issuances=10, ocsp_requests=40, list_rounds=1,
                             crl_rounds=1, rounds=1, out=lines.append)
    labels = [r.label for r in results]
    assert labels[0].startswith("issuance")
    assert sum(label.startswith("enroll certs list") for label in labels) >= 5
    assert any(label.startswith("OCSP") for label in labels)
    assert any(label.startswith("CRL rebuild") for label in labels)
    assert all(r.empty > 0 and r.filled > 0 for r in results)
    assert "filled store: 3" in lines[0] and any("| measurement |" in x for x in lines)
