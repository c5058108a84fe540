"""bench/compare.py works end to end against enroll and the peers (a smoke test, never a
speed test: no timing is asserted), and its certificate check rejects what it must."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import require_binary

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from loadclient.certcheck import SPKI, Expected, Trust, problem  # noqa: E402

REQUESTS = 3


def _compare(tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "compare.py"), *args,
                           "--concurrency", "1", "--requests", str(REQUESTS),
                           "--json", str(out)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=50, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows: list[dict[str, Any]] = json.loads(out.read_text())["rows"]
    assert "| server |" in done.stdout
    return rows


def _measured(rows: list[dict[str, Any]], server: str) -> dict[str, Any]:
    """The one measured row of `server`: every request issued a certificate that passed
    the check, each with its own serial, from that server's CA."""
    [row] = [r for r in rows if r["server"] == server]
    assert row["ok"] == REQUESTS and row["errors"] == 0, row
    assert len(set(row["serials"])) == REQUESTS
    assert row["per_s"] > 0 and row["p50_ms"] > 0 and row["server_cpu_ms_per_issuance"] >= 0
    return row


@pytest.mark.slow
def test_acme_against_pebble(tmp_path: Path) -> None:
    require_binary("pebble")
    rows = _compare(tmp_path, "acme", "--mode", "skip")
    enroll, pebble = _measured(rows, "enroll"), _measured(rows, "pebble")
    assert enroll["issuers"] == ["CN=enroll Issuing CA,O=enroll"]
    assert pebble["issuers"] and "enroll" not in pebble["issuers"][0]
    assert enroll["vs_peer"] == pytest.approx(enroll["per_s"] / pebble["per_s"])
    assert enroll["http01_fetches_per_issuance"] == pebble["http01_fetches_per_issuance"] == 0


@pytest.mark.slow
def test_acme_validate_really_validates(tmp_path: Path) -> None:
    rows = _compare(tmp_path, "acme", "--mode", "validate", "--servers", "enroll")
    assert _measured(rows, "enroll")["http01_fetches_per_issuance"] >= 1


@pytest.mark.slow
def test_scep_against_scepserver(tmp_path: Path) -> None:
    require_binary("scepserver")
    rows = _compare(tmp_path, "scep")
    enroll, peer = _measured(rows, "enroll"), _measured(rows, "scepserver")
    assert enroll["issuers"] == ["CN=enroll SCEP Issuing CA,O=enroll"]  # RSA, as the peer's
    assert peer["issuers"] and "enroll" not in peer["issuers"][0]
    assert "vs_peer" in enroll


@pytest.mark.slow
def test_est_against_the_reference(tmp_path: Path) -> None:
    rows = _compare(tmp_path, "est", "--mode", "keepalive")
    enroll = _measured(rows, "enroll")
    assert enroll["issuers"] == ["CN=enroll Issuing CA,O=enroll"]
    [ref] = [r for r in rows if r.get("reference")]
    assert ref["per_s"] == 1876.0 and "not run" in ref["server"]
    assert enroll["vs_peer"] == pytest.approx(enroll["per_s"] / 1876.0)


# -- the check itself ---------------------------------------------------------------------

def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool,
          dns: tuple[str, ...] = ()) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def test_the_certificate_check_rejects_wrong_key_names_and_issuer() -> None:
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(5)]
    root_key, sub_key, leaf_key, other_key, rogue_key = keys
    root = _cert("root", root_key, "root", root_key, ca=True)
    sub = _cert("sub", sub_key, "root", root_key, ca=True)
    leaf = _cert("a.example", leaf_key, "sub", sub_key, ca=False, dns=("a.example",))
    trust = Trust([root])
    asked = Expected(leaf_key.public_key().public_bytes(*SPKI), ("a.example",), "a.example")

    assert problem(leaf, asked, trust, [sub]) is None
    assert problem(leaf, asked, Trust([root, sub])) is None
    assert "no published CA" in str(problem(leaf, asked, trust))  # intermediate missing
    wrong_key = Expected(other_key.public_key().public_bytes(*SPKI), ("a.example",))
    assert "public key" in str(problem(leaf, wrong_key, trust, [sub]))
    wrong_name = Expected(asked.public_key_der, ("b.example",))
    assert "DNS names" in str(problem(leaf, wrong_name, trust, [sub]))
    wrong_cn = Expected(asked.public_key_der, ("a.example",), "b.example")
    assert "CN" in str(problem(leaf, wrong_cn, trust, [sub]))
    # Same names as the real intermediate, another key: the signature decides.
    rogue_sub = _cert("sub", rogue_key, "root", rogue_key, ca=True)
    assert "no published CA" in str(problem(leaf, asked, trust, [rogue_sub]))
    assert "no published CA" in str(problem(leaf, asked, Trust([rogue_sub])))
