"""EST (RFC 7030): /simpleenroll with HTTP Basic over TLS. Mode `keepalive`: one TLS
connection per virtual user, reused; `newconn`: a new connection (full TLS handshake)
per request. P-256 keys and CSRs are made before the clock starts."""

from __future__ import annotations

import base64
import os
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from .certcheck import SPKI, Checked, Expected, Trust, problem

MODES = ("keepalive", "newconn")
HEADERS = {"Content-Type": "application/pkcs10", "Content-Transfer-Encoding": "base64"}


@dataclass(frozen=True)
class Target:
    url: str  # .../.well-known/est
    username: str
    password: str
    tls_ca: str

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.tls_ca)


@dataclass(frozen=True)
class Job:
    body: bytes
    expected: Expected


def make_jobs(count: int) -> list[Job]:
    jobs = []
    for _ in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        cn = f"bench-{os.urandom(6).hex()}"
        dns = f"{cn}.bench.example"
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
               .sign(key, hashes.SHA256()))
        jobs.append(Job(base64.encodebytes(csr.public_bytes(serialization.Encoding.DER)),
                        Expected(key.public_key().public_bytes(*SPKI), (dns,), cn)))
    return jobs


def open_sessions(target: Target, count: int, mode: str) -> list[aiohttp.ClientSession]:
    context = target.ssl_context()
    auth = aiohttp.BasicAuth(target.username, target.password)
    return [aiohttp.ClientSession(auth=auth, connector=aiohttp.TCPConnector(
        ssl=context, limit=1, force_close=mode == "newconn")) for _ in range(count)]


def send_to(target: Target) -> Any:
    url = f"{target.url}/simpleenroll"

    async def send(session: aiohttp.ClientSession, job: Job) -> tuple[bytes, Job]:
        async with session.post(url, data=job.body, headers=HEADERS) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {body[:100]!r}")
        return body, job

    return send


def _pkcs7_certs(body: bytes) -> list[x509.Certificate]:
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))


async def load_trust(target: Target) -> Trust:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=target.ssl_context())) as session, \
            session.get(f"{target.url}/cacerts") as r:
        r.raise_for_status()
        return Trust(_pkcs7_certs(await r.read()))


def check(artifacts: list[tuple[bytes, Job]], trust: Trust) -> Checked:
    checked = Checked()
    for body, job in artifacts:
        try:
            certs = _pkcs7_certs(body)
        except ValueError as exc:
            checked.add(None, f"unreadable answer: {exc}")
            continue
        if not certs:
            checked.add(None, "no certificate in the answer")
            continue
        checked.add(certs[0], problem(certs[0], job.expected, trust, certs[1:]))
    return checked
