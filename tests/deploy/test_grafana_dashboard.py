"""examples/grafana/enroll-dashboard.json against a real `enroll serve`: after traffic
that moves every counter (an EST enrollment, a refused one, one held for approval, an
ACME issuance and its revocation, an OCSP request), every metric a panel's PromQL names
has samples in the /metrics scrape, with every label the expression matches or groups
by. So the dashboard cannot reference a metric or a label that does not exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from deploy_served import HEADERS, est_enroll
from enroll.protocols.acme.jws import b64e
from harness import child_env
from prometheus_client.parser import text_string_to_metric_families

from enroll.testing import make_csr
from enroll.testing.acme_client import AcmeClient
from enroll.testing.est_client import certs_from, csr_body

DASHBOARD = (Path(__file__).resolve().parents[2] / "examples" / "grafana"
             / "enroll-dashboard.json")
# PromQL words that are not metric names (functions, aggregations, modifiers).
PROMQL_WORDS = {"sum", "rate", "irate", "increase", "histogram_quantile", "by", "without",
                "max", "min", "avg", "count", "topk", "bottomk", "on", "ignoring",
                "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    return exprs


def referenced(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """Metric name -> labels its matchers name; and the labels of by (...) clauses."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    metrics: dict[str, set[str]] = {}
    for name, matchers in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        metrics.setdefault(name, set()).update(
            re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    grouping = {label.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
                for label in group.split(",") if label.strip()}
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without)\s*\([^)]*\)", " ", expr)
    for word in re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", bare):
        if word not in PROMQL_WORDS:
            metrics.setdefault(word, set())
    return metrics, grouping


def test_reference_parser_sees_names_matchers_and_grouping() -> None:
    metrics, grouping = referenced(
        'histogram_quantile(0.95, sum by (le, protocol) (rate(a_bucket{state="x",b!~"y"}'
        '[$__rate_interval]))) / b_total')
    assert metrics == {"a_bucket": {"state", "b"}, "b_total": set()}
    assert grouping == {"le", "protocol"}


def _prepare(data: Path) -> None:
    """`enroll init`, then: a `held` profile that waits for approval behind an EST
    endpoint of its own, and ACME challenges passed unchecked (TEST ONLY)."""
    r = subprocess.run([sys.executable, "-m", "enroll.cli.main", "init"], capture_output=True,
                       text=True, timeout=120, env=child_env(ENROLL_DATA_DIR=str(data)),
                       check=False)
    assert r.returncode == 0, r.stderr
    path = data / "enroll.toml"
    config: dict[str, Any] = tomllib.loads(path.read_text())
    config["profiles"]["held"] = {**config["profiles"]["device"], "approval": "manual"}
    config["est"]["endpoints"]["held"] = {**config["est"]["endpoints"]["default"],
                                          "profile": "held"}
    config.setdefault("acme", {})["skip_validation"] = True
    path.write_text(tomli_w.dumps(config))


def _ocsp(server: Any, cert: x509.Certificate) -> None:
    issuer_pem = httpx.get(f"{server.http_url}/ca/issuing.pem", trust_env=False, timeout=10)
    issuer = x509.load_pem_x509_certificate(issuer_pem.content)
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303
    r = httpx.post(f"{server.http_url}/ocsp", trust_env=False, timeout=10,
                   content=req.public_bytes(serialization.Encoding.DER),
                   headers={"content-type": "application/ocsp-request"})
    assert r.status_code == 200
    assert ocsp.load_der_ocsp_response(r.content).certificate_status is ocsp.OCSPCertStatus.GOOD


async def _acme_issue_and_revoke(server: Any) -> None:
    async with httpx.AsyncClient(verify=server.tls_ca, trust_env=False, timeout=30) as http:
        client = AcmeClient(http, server.endpoints["acme"]["directory"])
        await client.register()
        pem = await client.issue(["dash.example.com"])
        cert = x509.load_pem_x509_certificates(pem.encode())[0]
        directory = await client.directory()
        r = await client.post(directory["revokeCert"], {
            "certificate": b64e(cert.public_bytes(serialization.Encoding.DER))})
        assert r.status_code == 200, r.text


def _traffic(server: Any) -> None:
    est = server.endpoints["est"]
    issued = est_enroll(server.endpoints, cn="dashboard-device")
    _ocsp(server, certs_from(issued.content)[0])
    with httpx.Client(verify=server.tls_ca, trust_env=False, timeout=30) as client:
        auth = (est["username"], est["password"])
        refused = client.post(f"{est['url']}/simpleenroll", headers=HEADERS, auth=auth,
                              content=csr_body(make_csr(ec.generate_private_key(ec.SECP521R1()),
                                                        cn="p521-device")))
        assert refused.status_code in (400, 403), refused.text  # P-521: not a key_type
        held = client.post(f"{est['url']}/held/simpleenroll", headers=HEADERS, auth=auth,
                           content=csr_body(make_csr(cn="held-device", dns=[])))
        assert held.status_code == 202, held.text
    anyio.run(_acme_issue_and_revoke, server)


def _scrape(server: Any) -> dict[str, set[str]]:
    """Sample name -> the label names its samples carry."""
    text = httpx.get(server.endpoints["metrics_url"], trust_env=False, timeout=10).text
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


@pytest.mark.slow
def test_every_dashboard_metric_and_label_is_in_the_scrape(tmp_path: Path,
                                                           server_factory: Any) -> None:
    data = tmp_path / "data"
    _prepare(data)
    server = server_factory(data)
    _traffic(server)
    samples = _scrape(server)
    missing: list[str] = []
    for expr in expressions():
        metrics, grouping = referenced(expr)
        assert metrics, expr
        labels: set[str] = set()
        for name, matched in metrics.items():
            if name not in samples:
                missing.append(f"{name} (in {expr})")
                continue
            labels |= samples[name]
            missing += [f"{name}{{{label}}} (in {expr})" for label in matched - samples[name]]
        missing += [f"by ({label}) (in {expr})" for label in grouping - labels]
    assert not missing, "\n".join(missing)
    # The traffic reached the series the panels show.
    assert {"enroll_rejections_total", "enroll_pending_total", "enroll_revocations_total",
            "enroll_ocsp_signatures_total", "enroll_identities"} <= samples.keys()


def test_dashboard_panels_are_laid_out_and_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"] and p["datasource"]["uid"] == "${datasource}", p["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
