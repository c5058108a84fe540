"""The fleet scenario of issue 11, end to end over the wire against a real `enroll serve`:
devices enrol over SCEP (micromdm's scepclient and our client) and EST (curl + openssl);
a migration policy to ACME is set; the stragglers' old doors refuse them with the
policy's message; the same identities then get certificates over ACME (lego, certbot,
and our client naming their SCEP/EST certificates in ``replaces``); the inventory,
lineage and migration status show exactly that; after the grace the superseded
SCEP/EST certificates are revoked and the CRL and OCSP say so.

Debian's lego 4.9 and certbot 2.1 predate ACME Renewal Information (RFC 9773) and
cannot send ``replaces``: the migration makes the profile link renewals by identity, so
their certificates follow the devices' SCEP/EST ones all the same (link ``identity``).
Our client sends ``replaces`` for the other two devices: one account bound to the
devices' identities by its EAB key (link ``eab``), one plain account whose order's
identifiers are exactly the old certificate's names (link ``names``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import ocsp
from enroll.protocols.acme.ari import cert_id
from enroll.protocols.acme.jws import b64e, jwk_of
from enroll.protocols.scep import signeddata
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import LocalDns, child_env, free_port, require_binary, validator_env

from enroll.testing import make_key
from enroll.testing.acme_client import AcmeClient, Http01Responder, make_csr
from enroll.testing.scep_client import ScepClient, csr_with_challenge

pytestmark = [pytest.mark.interop, pytest.mark.slow]

DOMAIN = "fleet.test"
MESSAGE = "Renew over ACME: https://pki.fleet.test/acme/directory"
SCEPCLIENT_ALGORITHMS = "aes128,aes256,sha256,sha512,des,sha1"
PROFILE = "device"  # the embedded default's: identity = "subject.CN"


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=child_env(**env), capture_output=True, text=True,
                          timeout=120, check=False)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stdout


def _pem(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def _hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def _configure(data: Path, migration: dict[str, Any] | None) -> None:
    """The embedded default's config, with the `device` profile served by the default
    SCEP, EST and ACME endpoints, and (phase 2) its migration policy."""
    path = data / "enroll.toml"
    config = tomllib.loads(path.read_text())
    profile = config["profiles"][PROFILE]
    profile["revoke_superseded_after"] = "2s"
    if migration is not None:
        profile["migration"] = migration
    config.setdefault("acme", {}).setdefault("endpoints", {})["default"] = {"profile": PROFILE}
    path.write_text(tomli_w.dumps(config))


class Fleet:
    """The devices, the server they enrol with, and the tools they use."""

    def __init__(self, tmp: Path, server_factory: Any, local_dns: LocalDns) -> None:
        self.tmp, self.factory, self.dns = tmp, server_factory, local_dns
        self.data = tmp / "data"
        self.http01 = free_port()
        self.server: Any = None

    def start(self) -> None:
        env = {**validator_env(self.dns, self.http01),
               "ENROLL_SCEP__ENDPOINTS__DEFAULT__ALGORITHMS": SCEPCLIENT_ALGORITHMS}
        self.server = self.factory(self.data, extra_env=env)

    def restart(self, migration: dict[str, Any] | None) -> None:
        self.server.process.terminate()
        self.server.process.wait(timeout=15)
        _configure(self.data, migration)
        self.start()

    def cli(self, *args: str) -> Any:
        out = self.server.enroll(*args)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout) if "--json" in args else out.stdout

    # -- SCEP ---------------------------------------------------------------------------

    def scepclient(self, name: str, renew: bool = False) -> subprocess.CompletedProcess[str]:
        """Enrol with the challenge, or (`renew`) a RenewalReq signed with the
        certificate it holds."""
        scep = self.server.endpoints["scep"]
        work = self.tmp / name
        work.mkdir(exist_ok=True)
        how = ["-certificate", str(work / "client.pem")] if renew else \
            ["-challenge", scep["challenge"]]
        return _run([require_binary("scepclient"), "-server-url", scep["url"],
                     "-private-key", str(work / "key.pem"), "-cn", name, *how])

    def scep_client(self, name: str) -> tuple[PKIStatus, x509.Certificate | None, str]:
        scep = self.server.endpoints["scep"]
        with httpx.Client(trust_env=False, timeout=30) as http:
            certs, _ = signeddata.degenerate_contents(
                http.get(scep["url"], params={"operation": "GetCACert"}).content)
            ra = next(c for c in certs if not c.extensions.get_extension_for_class(
                x509.BasicConstraints).value.ca)
            device = ScepClient(ra)
            message, _ = device.pkcs_req(csr_with_challenge(device.key, name,
                                                            scep["challenge"]))
            r = http.post(scep["url"], params={"operation": "PKIOperation"}, content=message,
                          headers={"content-type": "application/x-pki-message"})
        assert r.status_code == 200, r.text
        reply = device.read(r.content)
        return reply.status, reply.certificate, reply.certrep.fail_text or ""

    # -- EST ----------------------------------------------------------------------------

    def est(self, name: str, tag: str) -> tuple[int, bytes]:
        """curl + openssl: a new key and CSR for `name`, POSTed to /simpleenroll."""
        est, work = self.server.endpoints["est"], self.tmp / name
        work.mkdir(exist_ok=True)
        script = (
            f"openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
            f"-keyout {tag}.key -subj /CN={name} -addext subjectAltName=DNS:{name} "
            f"-outform DER | openssl base64 > {tag}.b64 && "
            f"curl -sS -o {tag}.out -w '%{{http_code}}' --cacert {self.server.tls_ca} "
            f"-u {est['username']}:{est['password']} "
            f"-H 'Content-Type: application/pkcs10' --data-binary @{tag}.b64 "
            f"{est['url']}/simpleenroll")
        result = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=work,
                                env=child_env(), capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.strip()), (work / f"{tag}.out").read_bytes()

    def est_cert(self, name: str) -> x509.Certificate:
        code, body = self.est(name, "first")
        assert code == 200, body
        return pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))[0]

    # -- ACME ---------------------------------------------------------------------------

    def lego(self, name: str) -> x509.Certificate:
        acme = self.server.endpoints["acme"]
        _ok(_run([require_binary("lego"), "--server", acme["directory"], "--email",
                  "ops@fleet.test", "--accept-tos", "--path", str(self.tmp / "lego"),
                  "--domains", name, "--http", "--http.port", f"127.0.0.1:{self.http01}",
                  "run"], LEGO_CA_CERTIFICATES=self.server.tls_ca))
        return _pem(self.tmp / "lego" / "certificates" / f"{name}.crt")

    def certbot(self, name: str) -> x509.Certificate:
        """certbot with its own CSR (`--csr`): its generated CSRs carry no CN, which
        this profile's identity is."""
        work = self.tmp / "certbot"
        work.mkdir(exist_ok=True)
        key = make_key("ec-p256")
        (work / "req.der").write_bytes(make_csr([name], key))
        acme = self.server.endpoints["acme"]
        _ok(_run([require_binary("certbot"), "--non-interactive", "--server",
                  acme["directory"], "--config-dir", str(work / "cfg"), "--work-dir",
                  str(work / "work"), "--logs-dir", str(work / "logs"), "certonly",
                  "--agree-tos", "-m", "ops@fleet.test", "--standalone",
                  "--http-01-port", str(self.http01), "--http-01-address", "127.0.0.1",
                  "--csr", str(work / "req.der"), "-d", name,
                  "--cert-path", str(work / "cert.pem"),
                  "--fullchain-path", str(work / "fullchain.pem"),
                  "--chain-path", str(work / "chain.pem")],
                 REQUESTS_CA_BUNDLE=self.server.tls_ca))
        return _pem(work / "cert.pem")

    async def acme_replacing(self, name: str, old: x509.Certificate,
                             eab_identity: str | None) -> x509.Certificate:
        """Our client: an order for `name` naming `old` in ``replaces``; its account
        bound by an EAB key carrying `eab_identity`, or a plain account."""
        acme = self.server.endpoints["acme"]
        responder = Http01Responder()
        await responder.start(port=self.http01)
        try:
            async with httpx.AsyncClient(verify=self.server.tls_ca, trust_env=False,
                                         timeout=30) as http:
                client = AcmeClient(http, acme["directory"])
                if eab_identity is None:
                    await client.register()
                else:
                    made = self.cli("acme", "eab", "new", "--identity", eab_identity)
                    kid = made.split("kid:")[1].split()[0]
                    key = base64.urlsafe_b64decode(made.split("hmac:")[1].split()[0] + "==")
                    url = (await client.directory())["newAccount"]
                    p64 = b64e(json.dumps({"alg": "HS256", "kid": kid, "url": url}).encode())
                    body = b64e(json.dumps(jwk_of(client.key.public_key())).encode())
                    sig = hmac.new(key, f"{p64}.{body}".encode(), hashlib.sha256).digest()
                    await client.register(externalAccountBinding={
                        "protected": p64, "payload": body, "signature": b64e(sig)})
                pem = await client.issue([name], responder, replaces=cert_id(old))
        finally:
            responder.server.close()  # type: ignore[union-attr]
            await responder.server.wait_closed()  # type: ignore[union-attr]
        return x509.load_pem_x509_certificates(pem.encode())[0]

    # -- revocation as relying parties see it -------------------------------------------

    def ca_of(self, cert: x509.Certificate) -> str:
        """The name of the CA that issued `cert` (SCEP issues from the RSA `scep` CA
        on the embedded default, the `device` profile from `issuing`)."""
        return str(self.cli("certs", "show", _hex(cert), "--json")["ca"])

    def crl_serials(self, ca: str) -> set[int]:
        r = httpx.get(f"{self.server.http_url}/crl/{ca}.crl", trust_env=False, timeout=10)
        assert r.status_code == 200
        return {e.serial_number for e in x509.load_der_x509_crl(r.content)}

    def issuer(self, ca: str) -> x509.Certificate:
        return x509.load_pem_x509_certificates(httpx.get(
            f"{self.server.http_url}/ca/{ca}/chain.pem", trust_env=False,
            timeout=10).content)[0]

    def ocsp_status(self, cert: x509.Certificate, issuer: x509.Certificate
                    ) -> tuple[ocsp.OCSPCertStatus, x509.ReasonFlags | None]:
        req = ocsp.OCSPRequestBuilder().add_certificate(
            cert, issuer, hashes.SHA1()).build()  # noqa: S303 - RFC 5019's CertID hash
        r = httpx.post(self.server.endpoints["ocsp_url"], trust_env=False, timeout=10,
                       content=req.public_bytes(serialization.Encoding.DER),
                       headers={"content-type": "application/ocsp-request"})
        answer = ocsp.load_der_ocsp_response(r.content)
        assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        return answer.certificate_status, answer.revocation_reason


@pytest.fixture
def fleet(tmp_path: Path, server_factory: Any, local_dns: LocalDns) -> Fleet:
    subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir", str(tmp_path / "data"),
                    "init"], env=child_env(), capture_output=True, check=True, timeout=120)
    _configure(tmp_path / "data", None)
    f = Fleet(tmp_path, server_factory, local_dns)
    f.start()
    return f


async def test_a_fleet_moves_from_scep_and_est_to_acme(fleet: Fleet) -> None:
    names = {key: f"{key}.{DOMAIN}" for key in ("mdm-1", "mdm-2", "iot-1", "iot-2")}

    # 1. Devices enrol over SCEP and EST.
    _ok(fleet.scepclient(names["mdm-1"]))
    old = {"mdm-1": _pem(fleet.tmp / names["mdm-1"] / "client.pem")}
    status, cert, _ = fleet.scep_client(names["mdm-2"])
    assert status is PKIStatus.SUCCESS and cert is not None
    old["mdm-2"] = cert
    old["iot-1"] = fleet.est_cert(names["iot-1"])
    old["iot-2"] = fleet.est_cert(names["iot-2"])
    before = fleet.cli("inventory", "--profile", PROFILE, "--json")["items"]
    assert sorted((i["identity"], i["protocol"]) for i in before) == sorted(
        (f"subject.CN:{names[k]}", "scep" if k.startswith("mdm") else "est") for k in names)

    # 2. The migration policy: from yesterday, renewals must come over ACME.
    after = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    fleet.restart({"to": "acme", "after": after, "mode": "refuse", "message": MESSAGE})

    # 3. Stragglers are refused by their old doors, with the message; nothing issued.
    refused = fleet.scepclient(names["mdm-1"], renew=True)
    assert refused.returncode != 0
    assert "failInfo: badRequest" in refused.stdout + refused.stderr
    status, cert, text = fleet.scep_client(names["mdm-2"])
    assert status is PKIStatus.FAILURE and cert is None and text == MESSAGE
    code, body = fleet.est(names["iot-1"], "again")
    assert code == 403 and body.decode().strip() == MESSAGE
    audit = [json.loads(line) for line in fleet.cli("audit", "export").splitlines()]
    stragglers = [e["details"] for e in audit if e["type"] == "migration.straggler"]
    assert sorted((d["protocol"], d["identity"]) for d in stragglers) == [
        ("est", f"subject.CN:{names['iot-1']}"), ("scep", f"subject.CN:{names['mdm-1']}"),
        ("scep", f"subject.CN:{names['mdm-2']}")]
    assert all(d["mode"] == "refuse" and d["to"] == "acme" for d in stragglers)
    assert len(fleet.cli("certs", "list", "--protocol", "scep", "--profile", PROFILE,
                         "--json")) == 2

    # 4. The same identities move to ACME.
    new = {"mdm-1": fleet.lego(names["mdm-1"]), "iot-2": fleet.certbot(names["iot-2"])}
    new["mdm-2"] = await fleet.acme_replacing(names["mdm-2"], old["mdm-2"],
                                              eab_identity=f"subject.CN:*.{DOMAIN}")
    new["iot-1"] = await fleet.acme_replacing(names["iot-1"], old["iot-1"], None)
    links = {"mdm-1": "identity", "iot-2": "identity", "mdm-2": "eab", "iot-1": "names"}

    # 5. The inventory: every identity on ACME, migrated from its old door.
    rows = {i["identity"]: i for i in fleet.cli("inventory", "--profile", PROFILE,
                                                  "--json")["items"]}
    for key, name in names.items():
        row = rows[f"subject.CN:{name}"]
        assert (row["protocol"], row["serial"], row["certificates"]) == (
            "acme", _hex(new[key]), 2), row
        assert row["migrated_from"] == ("scep" if key.startswith("mdm") else "est")
        assert row["state"] == "migrated"
    assert fleet.cli("inventory", "--protocol", "scep", "--profile", PROFILE,
                     "--json")["items"] == []

    # 6. Lineage: oldest first, the old door's certificate, then ACME's, and why.
    for key, name in names.items():
        chains = fleet.cli("certs", "lineage", f"subject.CN:{name}", "--json")["chains"]
        assert len(chains) == 1
        chain = chains[0]
        assert [(c["serial"], c["protocol"], c["link"]) for c in chain] == [
            (_hex(old[key]), "scep" if key.startswith("mdm") else "est", None),
            (_hex(new[key]), "acme", links[key])], chain
        assert chain[1]["replaces"] == _hex(old[key])

    # 7. Migration status: all four on the target, none left behind.
    status_doc = fleet.cli("migration", "status", "--profile", PROFILE, "--json")
    (report,) = status_doc["profiles"]
    assert (report["identities"], report["on_target"], report["stragglers"],
            report["share_migrated"], report["migrated"]) == (4, 4, 0, 100.0, 4), report
    assert fleet.cli("migration", "stragglers", "--profile", PROFILE, "--csv"
                     ).splitlines()[1:] == []

    # 8. After the grace the superseded certificates are revoked: CRL and OCSP say so.
    time.sleep(2.5)
    lines = fleet.cli("certs", "revoke-superseded").splitlines()
    assert sorted(lines[:-1]) == sorted(f"revoked {_hex(c)} (superseded)" for c in old.values())
    assert lines[-1] == "4 superseded certificate(s) revoked"
    for key in names:
        was, now = fleet.ca_of(old[key]), fleet.ca_of(new[key])
        assert old[key].serial_number in fleet.crl_serials(was), key
        assert new[key].serial_number not in fleet.crl_serials(now), key
        assert fleet.ocsp_status(old[key], fleet.issuer(was)) == (
            ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.superseded)
        assert fleet.ocsp_status(new[key], fleet.issuer(now))[0] is ocsp.OCSPCertStatus.GOOD
