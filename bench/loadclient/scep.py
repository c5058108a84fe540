"""SCEP (RFC 8894): PKCSReq with RSA-2048 client keys, the same HTTP loop for every
server. Messages are built before the clock starts with enroll's pure wire modules
(pkimessage / envelope / signeddata); each CertRep is verified against the RA, opened and
its certificate checked after the clock stops."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID, NameOID
from enroll.protocols.scep import envelope, signeddata
from enroll.protocols.scep.pkimessage import MessageType, PKIStatus, build_request, parse_certrep

from .certcheck import SPKI, Checked, Expected, Trust, is_ca, load_pem_chain, problem

KEY_POOL = 16  # RSA-2048 keys are slow to make: a pool, a fresh subject per request
CIPHER = "aes128_cbc"
PKI_MESSAGE = {"Content-Type": "application/x-pki-message"}


@dataclass(frozen=True)
class Device:
    key: rsa.RSAPrivateKey
    signer: x509.Certificate  # the self-signed certificate of RFC 8894 §2.3


@dataclass(frozen=True)
class Job:
    device: Device
    message: bytes
    transaction_id: str
    sender_nonce: bytes
    expected: Expected


def make_device() -> Device:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-device")])
    now = dt.datetime.now(dt.UTC)
    signer = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return Device(key, signer)


async def get_ca(url: str, chain_url: str | None = None) -> tuple[x509.Certificate, Trust]:
    """GetCACert: the RA certificate to encrypt to, and the published CA certificates
    (plus those at `chain_url`, for a server whose GetCACert carries no CA certificate)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params={"operation": "GetCACert"}) as r:
            r.raise_for_status()
            body = await r.read()
            kind = r.headers.get("Content-Type", "")
        certs = (signeddata.degenerate_contents(body)[0] if "ca-ra-cert" in kind
                 else [x509.load_der_x509_certificate(body)])
        published = list(certs)
        if chain_url is not None:
            async with session.get(chain_url) as r:
                r.raise_for_status()
                published += load_pem_chain(await r.read())
    leaves = [c for c in certs if not is_ca(c)]
    return (leaves or certs)[0], Trust(published)


def make_jobs(count: int, ra: x509.Certificate, challenge: str,
              devices: list[Device]) -> list[Job]:
    jobs = []
    for i in range(count):
        device = devices[i % len(devices)]
        cn = f"bench-{os.urandom(6).hex()}"
        dns = f"{cn}.bench.example"
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
               .add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
               .sign(device.key, hashes.SHA256()))
        tid, nonce = os.urandom(10).hex(), os.urandom(16)
        message = build_request(MessageType.PKCS_REQ, csr.public_bytes(serialization.Encoding.DER),
                                [ra], device.signer, device.key, tid, nonce, CIPHER, "sha256")
        jobs.append(Job(device, message, tid, nonce,
                        Expected(device.key.public_key().public_bytes(*SPKI), (dns,), cn)))
    return jobs


def open_sessions(count: int) -> list[aiohttp.ClientSession]:
    return [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            for _ in range(count)]


def send_to(url: str) -> Any:
    async def send(session: aiohttp.ClientSession, job: Job) -> tuple[bytes, Job]:
        async with session.post(url, params={"operation": "PKIOperation"}, data=job.message,
                                headers=PKI_MESSAGE) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {body[:100]!r}")
        return body, job

    return send


def _one(body: bytes, job: Job, ra: x509.Certificate,
         trust: Trust) -> tuple[x509.Certificate | None, str | None]:
    rep = parse_certrep(body, ra)
    if rep.status is not PKIStatus.SUCCESS:
        return None, f"pkiStatus {rep.status.name} {rep.fail_info} {rep.fail_text or ''}"
    if rep.transaction_id != job.transaction_id or rep.recipient_nonce != job.sender_nonce:
        return None, "transactionID or recipientNonce not echoed"
    if rep.enveloped is None:
        return None, "SUCCESS without an envelope"
    inner, _ = envelope.decrypt(rep.enveloped, job.device.signer, job.device.key,
                                envelope.CIPHERS)
    certs = signeddata.degenerate_contents(inner)[0]
    mine = [c for c in certs if c.public_key().public_bytes(*SPKI) ==
            job.expected.public_key_der]
    leaves = mine or [c for c in certs if not is_ca(c)]
    if not leaves:
        return None, "no certificate in the CertRep"
    leaf = leaves[0]
    return leaf, problem(leaf, job.expected, trust, [c for c in certs if c is not leaf])


def check(artifacts: list[tuple[bytes, Job]], ra: x509.Certificate, trust: Trust) -> Checked:
    checked = Checked()
    for body, job in artifacts:
        try:
            checked.add(*_one(body, job, ra, trust))
        except Exception as exc:  # noqa: BLE001 - a malformed answer is a failure
            checked.add(None, f"{type(exc).__name__}: {exc}")
    return checked
