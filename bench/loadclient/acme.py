"""ACME (RFC 8555): one issuance = newOrder -> authz -> challenge -> poll -> finalize ->
poll -> download, every request an ES256 JWS signed here with `cryptography`.

Accounts (one per virtual user, each with its own keep-alive aiohttp session) are
registered before the clock starts; each issuance has its own P-256 key and CSR, made
beforehand too. For real http-01 validation the bench runs an http-01 responder and a
DNS server (A 127.0.0.1 for every name) on loopback, shared by enroll and pebble.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import ssl
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import dns.exception
import dns.message
import dns.rdatatype
import dns.rrset
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from .certcheck import SPKI, Checked, Expected, Trust, load_pem_chain, problem

JOSE = {"Content-Type": "application/jose+json"}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Http01Responder:
    """Answers GET /.well-known/acme-challenge/<token> from `tokens`."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.fetches = 0  # validation requests seen: proof that `validate` validates
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.Response:
        self.fetches += 1
        body = self.tokens.get(request.match_info["token"])
        if body is None:
            return web.Response(status=404)
        return web.Response(text=body, content_type="application/octet-stream")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/acme-challenge/{token}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class _DnsProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        reply = dns.message.make_response(query)
        for question in query.question:
            if question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text(question.name, 5, "IN", "A",
                                                        "127.0.0.1"))
        self.transport.sendto(reply.to_wire(), addr)


class DnsServer:
    """UDP DNS on 127.0.0.1: A 127.0.0.1 for every name, no other records."""

    def __init__(self) -> None:
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(_DnsProtocol,
                                                           local_addr=("127.0.0.1", 0))
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class AcmeProblem(Exception):
    pass


@dataclass
class Account:
    """One virtual user: an account key, its session and the last nonce."""

    session: aiohttp.ClientSession
    directory: dict[str, str]
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str | None = None
    nonce: str | None = None

    @property
    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {"crv": "P-256", "kty": "EC", "x": b64u(numbers.x.to_bytes(32, "big")),
                "y": b64u(numbers.y.to_bytes(32, "big"))}

    def key_authorization(self, token: str) -> str:
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":")).encode()
        return f"{token}.{b64u(hashlib.sha256(canonical).digest())}"

    def _jws(self, url: str, payload: Any, nonce: str) -> bytes:
        protected: dict[str, Any] = {"alg": "ES256", "nonce": nonce, "url": url}
        if self.kid is None:
            protected["jwk"] = self.jwk
        else:
            protected["kid"] = self.kid
        p64 = b64u(json.dumps(protected).encode())
        body = "" if payload is None else b64u(json.dumps(payload).encode())
        r, s = decode_dss_signature(self.key.sign(f"{p64}.{body}".encode(),
                                                  ec.ECDSA(hashes.SHA256())))
        signature = b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return json.dumps({"protected": p64, "payload": body,
                           "signature": signature}).encode()

    async def _nonce(self) -> str:
        if self.nonce is None:
            async with self.session.head(self.directory["newNonce"]) as r:
                self.nonce = r.headers["Replay-Nonce"]
        nonce, self.nonce = self.nonce, None
        return nonce

    async def post(self, url: str, payload: Any = None,
                   retried: bool = False) -> tuple[int, dict[str, str], bytes]:
        """A signed POST (payload None: POST-as-GET); retried once on badNonce."""
        body = self._jws(url, payload, await self._nonce())
        async with self.session.post(url, data=body, headers=JOSE) as r:
            content = await r.read()
            headers = {"Location": r.headers.get("Location", "")}
            self.nonce = r.headers.get("Replay-Nonce")
            status = r.status
        if status >= 400:
            try:
                prob = json.loads(content)
            except ValueError:
                prob = {"detail": content[:100].decode(errors="replace")}
            if not retried and str(prob.get("type", "")).endswith(":badNonce"):
                return await self.post(url, payload, retried=True)
            raise AcmeProblem(f"{status} {prob.get('type', '')} {prob.get('detail', '')} "
                              f"({url.rsplit('/', 2)[-2]})")
        return status, headers, content

    async def post_json(self, url: str, payload: Any = None) -> tuple[dict[str, str],
                                                                      dict[str, Any]]:
        _, headers, content = await self.post(url, payload)
        return headers, json.loads(content)

    async def register(self) -> None:
        headers, _ = await self.post_json(self.directory["newAccount"],
                                          {"termsOfServiceAgreed": True})
        self.kid = headers["Location"]

    async def poll(self, url: str, done: tuple[str, ...], timeout: float = 60.0) -> dict[str,
                                                                                          Any]:
        """POST-as-GET until the status is in `done`, backing off 10 ms -> 250 ms."""
        loop = asyncio.get_running_loop()
        delay, deadline = 0.01, loop.time() + timeout
        while True:
            _, obj = await self.post_json(url)
            if obj.get("status") in done:
                return obj
            if loop.time() > deadline:
                raise AcmeProblem(f"{url} still {obj.get('status')}")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)


@dataclass(frozen=True)
class Job:
    name: str
    csr_der: bytes
    expected: Expected


def make_jobs(count: int) -> list[Job]:
    jobs = []
    for _ in range(count):
        name = f"b{secrets.token_hex(5)}.bench.example"
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                              critical=False)
               .sign(key, hashes.SHA256()))
        jobs.append(Job(name, csr.public_bytes(serialization.Encoding.DER),
                        Expected(key.public_key().public_bytes(*SPKI), (name,))))
    return jobs


@dataclass
class Target:
    """An ACME server as the client sees it."""

    directory_url: str
    tls_ca: str
    trust_url: str  # PEM of the CA certificate(s) the server publishes
    responder: Http01Responder

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.tls_ca)


async def open_accounts(target: Target, count: int) -> list[Account]:
    context = target.ssl_context()
    accounts = []
    for _ in range(count):
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=1))
        async with session.get(target.directory_url) as r:
            directory = await r.json(content_type=None)
        account = Account(session, directory)
        await account.register()
        accounts.append(account)
    return accounts


async def close_accounts(accounts: list[Account]) -> None:
    for account in accounts:
        await account.session.close()


def issue_with(target: Target) -> Any:
    async def issue(account: Account, job: Job) -> tuple[str, Job]:
        _, order_headers, content = await account.post(account.directory["newOrder"], {
            "identifiers": [{"type": "dns", "value": job.name}]})
        order = json.loads(content)
        order_url = order_headers["Location"]
        for authz_url in order["authorizations"]:
            _, authz = await account.post_json(authz_url)
            if authz["status"] == "valid":
                continue
            chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
            target.responder.tokens[chall["token"]] = account.key_authorization(chall["token"])
            _, answered = await account.post_json(chall["url"], {})
            if answered["status"] != "valid":
                authz = await account.poll(authz_url, ("valid", "invalid"))
                if authz["status"] != "valid":
                    raise AcmeProblem(f"authorization invalid: {authz}")
            target.responder.tokens.pop(chall["token"], None)
        if order["status"] != "ready":
            order = await account.poll(order_url, ("ready", "invalid"))
        if order["status"] != "ready":
            raise AcmeProblem(f"order {order['status']}: {order.get('error')}")
        _, order = await account.post_json(order["finalize"], {"csr": b64u(job.csr_der)})
        if order["status"] != "valid":
            order = await account.poll(order_url, ("valid", "invalid"))
        if order["status"] != "valid":
            raise AcmeProblem(f"order {order['status']}: {order.get('error')}")
        _, _, pem = await account.post(order["certificate"])
        return pem.decode(), job

    return issue


async def load_trust(target: Target) -> Trust:
    connector = aiohttp.TCPConnector(ssl=target.ssl_context())
    async with aiohttp.ClientSession(connector=connector) as session, \
            session.get(target.trust_url) as r:
        r.raise_for_status()
        return Trust(load_pem_chain(await r.read()))


def check(artifacts: list[tuple[str, Job]], trust: Trust) -> Checked:
    checked = Checked()
    for pem, job in artifacts:
        try:
            chain = load_pem_chain(pem.encode())
        except ValueError as exc:
            checked.add(None, f"{job.name}: unreadable certificate chain: {exc}")
            continue
        why = problem(chain[0], job.expected, trust, chain[1:])
        checked.add(chain[0], why and f"{job.name}: {why}")
    return checked
