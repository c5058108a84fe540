"""A small async ACME client (RFC 8555) for tests and scripts: signs with
`cryptography`, keeps one nonce, and can craft deliberately wrong requests. It borrows
`b64e` and the JWK thumbprint from the ACME front end's `jws` module (a test-support
module may import a protocol; the core and ``enroll serve`` never import this one).

    async with httpx.AsyncClient(verify=ca_file) as http:
        acme = AcmeClient(http, "https://127.0.0.1:8443/acme/directory")
        await acme.register()
        pem = await acme.issue(["host.example"], responder)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from enroll.protocols.acme.jws import b64e, jwk_of, thumbprint

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def alg_of(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    return "RS256" if isinstance(key, rsa.RSAPrivateKey) else "EdDSA"


def sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        digest = {32: hashes.SHA256(), 48: hashes.SHA384(), 66: hashes.SHA512()}[size]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)


def jws(key: PrivateKey, protected: dict[str, Any], payload: Any) -> dict[str, str]:
    """A flattened JWS; `payload` None means POST-as-GET (empty payload string)."""
    p64 = b64e(json.dumps(protected).encode())
    body = "" if payload is None else b64e(json.dumps(payload).encode())
    return {"protected": p64, "payload": body,
            "signature": b64e(sign(key, f"{p64}.{body}".encode()))}


def make_csr(names: list[str], key: PrivateKey | None = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
           .add_extension(x509.SubjectAlternativeName(sans), critical=False)
           .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.DER)


class Http01Responder:
    """An asyncio HTTP server answering ``/.well-known/acme-challenge/<token>``."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, host, port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            path = line.split(b" ")[1].decode() if line.count(b" ") >= 2 else ""
            token = path.rsplit("/", 1)[-1]
            body = self.tokens.get(token)
            if body is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close"
                             b"\r\n\r\n%s" % (len(body), body.encode()))
            await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class AcmeError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        try:
            self.problem = response.json()
        except ValueError:
            self.problem = {}
        super().__init__(f"{response.status_code} {self.problem}")


class AcmeClient:
    def __init__(self, http: httpx.AsyncClient, directory_url: str,
                 key: PrivateKey | None = None) -> None:
        self.http = http
        self.directory_url = directory_url
        self.key: PrivateKey = key or ec.generate_private_key(ec.SECP256R1())
        self.dir: dict[str, Any] = {}
        self.kid: str | None = None
        self._nonce: str | None = None

    async def directory(self) -> dict[str, Any]:
        if not self.dir:
            self.dir = (await self.http.get(self.directory_url)).json()
        return self.dir

    async def nonce(self) -> str:
        if self._nonce is None:
            r = await self.http.head((await self.directory())["newNonce"])
            self._nonce = r.headers["Replay-Nonce"]
        nonce, self._nonce = self._nonce, None
        return nonce

    def key_authorization(self, token: str) -> str:
        return f"{token}.{thumbprint(jwk_of(self.key.public_key()))}"

    def dns01_value(self, token: str) -> str:
        # mypy sees protocols/ as `protocols`, so b64e is untyped from here.
        value: str = b64e(hashlib.sha256(self.key_authorization(token).encode()).digest())
        return value

    async def signed(self, target: str, payload: Any, *, use_jwk: bool = False,
                     key: PrivateKey | None = None, **header: Any) -> dict[str, str]:
        """Sign for `target`; `header` overrides protected members (``...`` drops one)."""
        key = key or self.key
        protected: dict[str, Any] = {"alg": alg_of(key), "url": target}
        if use_jwk or self.kid is None:
            protected["jwk"] = jwk_of(key.public_key())
        else:
            protected["kid"] = self.kid
        if "nonce" not in header:
            protected["nonce"] = await self.nonce()
        protected.update({k: v for k, v in header.items() if v is not ...})
        for k in [k for k, v in header.items() if v is ...]:
            protected.pop(k, None)
        return jws(key, protected, payload)

    async def post(self, target: str, payload: Any = None, *, check: bool = True,
                   retry_nonce: bool = True, **kw: Any) -> httpx.Response:
        body = await self.signed(target, payload, **kw)
        r = await self.http.post(target, content=json.dumps(body),
                                 headers={"Content-Type": "application/jose+json"})
        if "Replay-Nonce" in r.headers:
            self._nonce = r.headers["Replay-Nonce"]
        if (retry_nonce and r.status_code == 400 and "nonce" not in kw
                and r.headers.get("content-type") == "application/problem+json"
                and r.json().get("type", "").endswith(":badNonce")):
            return await self.post(target, payload, check=check, retry_nonce=False, **kw)
        if check and r.status_code >= 400:
            raise AcmeError(r)
        return r

    async def register(self, **payload: Any) -> httpx.Response:
        d = await self.directory()
        r = await self.post(d["newAccount"], {"termsOfServiceAgreed": True, **payload},
                            use_jwk=True)
        self.kid = r.headers["Location"]
        return r

    async def new_order(self, names: list[str], **extra: Any) -> tuple[str, dict[str, Any]]:
        import ipaddress

        idents = []
        for n in names:
            try:
                idents.append({"type": "ip", "value": str(ipaddress.ip_address(n))})
            except ValueError:
                idents.append({"type": "dns", "value": n})
        d = await self.directory()
        r = await self.post(d["newOrder"], {"identifiers": idents, **extra})
        return r.headers["Location"], r.json()

    async def new_device_order(self, value: str,
                               **extra: Any) -> tuple[str, dict[str, Any]]:
        """newOrder for one ``permanent-identifier`` (draft-ietf-acme-device-attest)."""
        d = await self.directory()
        r = await self.post(d["newOrder"], {"identifiers": [
            {"type": "permanent-identifier", "value": value}], **extra})
        return r.headers["Location"], r.json()

    async def answer_device_attest(self, challenge_url: str, att_obj: bytes,
                                   *, check: bool = False) -> httpx.Response:
        """Respond to device-attest-01 with ``{"attObj": base64url(CBOR)}``."""
        return await self.post(challenge_url, {"attObj": b64e(att_obj)}, check=check)

    async def issue_device(self, value: str, attest: Callable[[str, str], bytes],
                           csr: bytes) -> str:
        """newOrder -> device-attest-01 -> finalize -> certificate; the PEM chain.
        `attest(token, key_authorization)` makes the CBOR attestation object (a device
        puts SHA-256 of the token in its attestation as the nonce)."""
        order_url, order = await self.new_device_order(value)
        for authz_url in order["authorizations"]:
            authz = (await self.get(authz_url)).json()
            chall = next(c for c in authz["challenges"] if c["type"] == "device-attest-01")
            att_obj = attest(chall["token"], self.key_authorization(chall["token"]))
            answered = (await self.answer_device_attest(chall["url"], att_obj,
                                                        check=True)).json()
            if answered["status"] != "valid":
                raise RuntimeError(f"device-attest-01 failed: {answered.get('error')}")
        order = await self.poll(order_url, ("ready", "invalid"))
        if order["status"] != "ready":
            raise RuntimeError(f"order invalid: {order.get('error')}")
        order = (await self.post(order["finalize"], {"csr": b64e(csr)})).json()
        if order["status"] not in ("valid", "invalid"):
            order = await self.poll(order_url, ("valid", "invalid"))
        if order["status"] != "valid":
            raise RuntimeError(f"order invalid: {order.get('error')}")
        return (await self.get(order["certificate"])).text

    async def get(self, url: str) -> httpx.Response:
        return await self.post(url, None)

    async def poll(self, url: str, until: tuple[str, ...], timeout: float = 30.0) -> dict[str, Any]:
        """POST-as-GET `url` until its status is in `until`, backing off from 10 ms to
        250 ms (a fixed short interval turns high concurrency into a poll storm)."""
        delay, deadline = 0.01, asyncio.get_running_loop().time() + timeout
        while True:
            body: dict[str, Any] = (await self.get(url)).json()
            if body["status"] in until:
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} stayed {body['status']}")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def issue(self, names: list[str], responder: Http01Responder | None = None,
                    challenge: str = "http-01", csr: bytes | None = None,
                    **order_extra: Any) -> str:
        """newOrder -> challenge -> finalize -> certificate; the PEM chain."""
        order_url, order = await self.new_order(names, **order_extra)
        for authz_url in order["authorizations"]:
            authz = (await self.get(authz_url)).json()
            if authz["status"] == "valid":
                continue
            chall = next(c for c in authz["challenges"] if c["type"] == challenge)
            if responder is not None:
                responder.tokens[chall["token"]] = self.key_authorization(chall["token"])
            answered = (await self.post(chall["url"], {})).json()
            if answered["status"] != "valid":
                await self.poll(authz_url, ("valid", "invalid"))
        order = await self.poll(order_url, ("ready", "invalid"))
        if order["status"] != "ready":
            raise RuntimeError(f"order invalid: {order.get('error')}")
        order = (await self.post(order["finalize"], {"csr": b64e(csr or make_csr(names))})).json()
        if order["status"] not in ("valid", "invalid"):
            order = await self.poll(order_url, ("valid", "invalid"))
        if order["status"] != "valid":
            raise RuntimeError(f"order invalid: {order.get('error')}")
        return (await self.get(order["certificate"])).text
