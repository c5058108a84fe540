"""examples/cert-manager/clusterissuer.yaml against a real `enroll serve`: with its
placeholders filled as docs/operating.md says, each ClusterIssuer's `server` is a
directory the engine serves, reached over TLS with only the issuer's `caBundle`; the
EAB issuer's endpoint requires a binding, and the kid and Secret value it names (the
`enroll acme eab new` output, as printed) bind an account."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from enroll.protocols.acme.jws import b64e, jwk_of

from enroll.testing.acme_client import AcmeClient, AcmeError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cert-manager" / "clusterissuer.yaml"
PLACEHOLDER_HOST = "enroll.example.internal:8443"
# The EAB endpoint the second issuer points at, configured as the docs show (configured
# endpoints replace the implicit default one, so it is listed too).
CORP_ENV = {"ENROLL_ACME__ENDPOINTS__DEFAULT__PROFILE": "server",
            "ENROLL_ACME__ENDPOINTS__CORP__PROFILE": "server",
            "ENROLL_ACME__ENDPOINTS__CORP__EAB_REQUIRED": "true"}


def _filled(server: Any, kid: str, hmac_key: str) -> list[dict[str, Any]]:
    text = EXAMPLE.read_text()
    for placeholder in (PLACEHOLDER_HOST, "ENROLL_TLS_CA_BASE64", "ENROLL_EAB_KID",
                        "ENROLL_EAB_HMAC"):
        assert placeholder in text, placeholder
    ca_b64 = base64.b64encode(Path(server.tls_ca).read_bytes()).decode()
    host = urllib.parse.urlsplit(server.https_url).netloc
    text = (text.replace(PLACEHOLDER_HOST, host).replace("ENROLL_TLS_CA_BASE64", ca_b64)
            .replace("ENROLL_EAB_KID", kid).replace("ENROLL_EAB_HMAC", hmac_key))
    return [d for d in yaml.safe_load_all(text) if d]


def _issuers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["acme"] for d in docs
            if d["apiVersion"] == "cert-manager.io/v1" and d["kind"] == "ClusterIssuer"}


def _directory(acme: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    bundle = tmp_path / f"ca-{abs(hash(acme['server']))}.pem"
    bundle.write_bytes(base64.b64decode(acme["caBundle"], validate=True))
    r = httpx.get(acme["server"], verify=str(bundle), trust_env=False, timeout=10)
    assert r.status_code == 200, (acme["server"], r.text)
    directory: dict[str, Any] = r.json()
    assert {"newNonce", "newAccount", "newOrder"} <= directory.keys()
    return directory


@pytest.mark.slow
def test_cluster_issuers_point_at_served_directories(tmp_path: Path,
                                                      server_factory: Any) -> None:
    server = server_factory(tmp_path / "data", extra_env=CORP_ENV)
    made = server.enroll("acme", "eab", "new", "--endpoint", "corp")
    assert made.returncode == 0, made.stderr
    kid = made.stdout.split("kid:")[1].split()[0]
    hmac_key = made.stdout.split("hmac:")[1].split()[0]
    docs = _filled(server, kid, hmac_key)
    issuers = _issuers(docs)
    assert set(issuers) == {"enroll", "enroll-corp"}
    for acme in issuers.values():
        assert urllib.parse.urlsplit(acme["server"]).scheme == "https"
        assert acme["privateKeySecretRef"]["name"]
        assert acme["solvers"]
    plain = _directory(issuers["enroll"], tmp_path)
    assert not plain.get("meta", {}).get("externalAccountRequired", False)
    assert plain["newAccount"].startswith(server.https_url + "/acme/")
    corp = _directory(issuers["enroll-corp"], tmp_path)
    assert corp["meta"]["externalAccountRequired"] is True
    assert "/acme/corp/" in corp["newAccount"]

    binding = issuers["enroll-corp"]["externalAccountBinding"]
    assert binding["keyID"] == kid
    ref = binding["keySecretRef"]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    secret_value = secrets[ref["name"]]["stringData"][ref["key"]]
    assert secrets[ref["name"]]["metadata"]["namespace"] == "cert-manager"
    anyio.run(_bind_account, issuers["enroll-corp"]["server"], server.tls_ca, kid,
              secret_value)


async def _bind_account(directory_url: str, tls_ca: str, kid: str, secret: str) -> None:
    """What cert-manager does with the issuer: newAccount without a binding is refused,
    with the kid and the Secret's key (base64url) it is created."""
    key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    async with httpx.AsyncClient(verify=tls_ca, trust_env=False, timeout=30) as http:
        unbound = AcmeClient(http, directory_url)
        with pytest.raises(AcmeError) as refused:
            await unbound.register()
        assert refused.value.problem["type"].endswith("externalAccountRequired")
        client = AcmeClient(http, directory_url)
        url = (await client.directory())["newAccount"]
        p64 = b64e(json.dumps({"alg": "HS256", "kid": kid, "url": url}).encode())
        body = b64e(json.dumps(jwk_of(client.key.public_key())).encode())
        sig = hmac.new(key, f"{p64}.{body}".encode(), hashlib.sha256).digest()
        r = await client.register(externalAccountBinding={
            "protected": p64, "payload": body, "signature": b64e(sig)})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "valid"
