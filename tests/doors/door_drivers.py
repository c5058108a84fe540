"""One rule, every door: drivers that make the same request through SCEP, EST and ACME.

(The fixtures that build them are in this folder's conftest.py.)

A test parametrised over ``door`` (``scep``, ``est``, ``acme``) gets a `DoorDriver`
whose `enroll` and `renew` speak that protocol over HTTP to one in-process app (every
front-end serving the same profile), and an `Answer` in protocol terms: the SCEP
failInfo, the EST status code or the ACME problem type. ACME authorizations are
validated for real (http-01 to a responder on loopback, names resolved by a local DNS).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from enroll.protocols.acme.ari import cert_id
from enroll.protocols.scep.pkimessage import MessageType, PKIStatus
from harness import (
    ACME_BASE,
    ALICE,
    CHALLENGE,
    PKI_MESSAGE,
    Harness,
    with_transport,
)
from harness import (
    _is_ca as is_ca,
)

from enroll.testing import make_csr, make_key
from enroll.testing.acme_client import AcmeClient, AcmeError, Http01Responder
from enroll.testing.est_client import PKCS10_HEADERS, WELL_KNOWN, certs_from, csr_body
from enroll.testing.scep_client import ScepClient

DOORS = ("scep", "est", "acme")
CHALLENGE_OID = x509.oid.AttributeOID.CHALLENGE_PASSWORD


@dataclass
class Answer:
    """What a door answered: a certificate, or the protocol's refusal."""

    cert: x509.Certificate | None
    error: str = ""
    """SCEP failInfo name (``BAD_REQUEST``), EST status (``400``), ACME problem type
    (``badCSR``)."""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.cert is not None


@dataclass
class DoorDriver:
    """Enroll and renew through one protocol. `key` is the device's key (SCEP needs it
    to sign; it must be RSA or NIST EC)."""

    name: str
    h: Harness
    responder: Http01Responder
    _acme: AcmeClient | None = None
    keys: dict[int, Any] = field(default_factory=dict)
    """serial -> the private key of each certificate this driver obtained."""

    # -- enrolment -------------------------------------------------------------------

    async def enroll(self, *, key: Any = None, order: list[str] | None = None,
                     transaction_id: str | None = None, acme_profile: str | None = None,
                     **csr: Any) -> Answer:
        """A first certificate. `csr` goes to `make_csr` (cn, dns, ips, emails, uris,
        subject); ACME orders `order` (default: the CSR's DNS names and IPs), under
        `acme_profile` when given (the profiles extension)."""
        key = key or make_key()
        if self.name == "acme":
            extra = {"profile": acme_profile} if acme_profile else {}
            answer = await self._enroll_acme(key, order, transaction_id, csr, **extra)
        else:
            answer = await getattr(self, f"_enroll_{self.name}")(key, order, transaction_id,
                                                                 csr)
        if answer.cert is not None:
            self.keys[answer.cert.serial_number] = key
        return answer

    async def _enroll_scep(self, key: Any, order: Any, tid: str | None,
                           csr: dict[str, Any]) -> Answer:
        request = make_csr(key, attributes=[(CHALLENGE_OID, CHALLENGE.encode())], **csr)
        client = ScepClient(await self._scep_ra(), key=key)
        message, _ = client.pkcs_req(request, tid)
        return await self._scep_answer(client, message)

    async def _enroll_est(self, key: Any, order: Any, tid: str | None,
                          csr: dict[str, Any]) -> Answer:
        r = await self.h.http.post(f"{WELL_KNOWN}/simpleenroll",
                                   content=csr_body(make_csr(key, **csr)),
                                   headers=PKCS10_HEADERS, auth=ALICE)
        return _est_answer(r)

    async def _enroll_acme(self, key: Any, order: list[str] | None, tid: str | None,
                           csr: dict[str, Any], **order_extra: Any) -> Answer:
        names = order if order is not None else [*csr.get("dns", ()), *csr.get("ips", ())]
        client = await self.acme()
        request = make_csr(key, **csr).public_bytes(serialization.Encoding.DER)
        try:
            pem = await client.issue(names, self.responder, csr=request, **order_extra)
        except AcmeError as exc:
            body = exc.response.json()
            return Answer(None, body["type"].rpartition(":")[2], body.get("detail", ""))
        except RuntimeError as exc:  # the order went invalid
            return Answer(None, "orderInvalid", str(exc))
        return Answer(x509.load_pem_x509_certificates(pem.encode())[0])

    # -- renewal ---------------------------------------------------------------------

    async def renew(self, old: x509.Certificate, *, key: Any = None,
                    order: list[str] | None = None, transaction_id: str | None = None,
                    **csr: Any) -> Answer:
        """Renew `old` the protocol's way: SCEP RenewalReq signed with it, EST
        simplereenroll with it as the TLS client certificate, ACME newOrder with
        ``replaces``. The CSR (new key unless `key`) comes from `csr`."""
        key = key or make_key()
        answer = await getattr(self, f"_renew_{self.name}")(old, key, order,
                                                            transaction_id, csr)
        if answer.cert is not None:
            self.keys[answer.cert.serial_number] = key
        return answer

    async def _renew_scep(self, old: x509.Certificate, key: Any, order: Any,
                          tid: str | None, csr: dict[str, Any]) -> Answer:
        client = ScepClient(await self._scep_ra(), key=self.keys[old.serial_number])
        client.signer = old  # type: ignore[attr-defined]
        message, _ = client.pkcs_req(make_csr(key, **csr), tid,  # type: ignore[attr-defined]
                                     MessageType.RENEWAL_REQ)
        return await self._scep_answer(client, message)

    async def _renew_est(self, old: x509.Certificate, key: Any, order: Any,
                         tid: str | None, csr: dict[str, Any]) -> Answer:
        return await self.est_with_cert(old, "simplereenroll", make_csr(key, **csr))

    async def _renew_acme(self, old: x509.Certificate, key: Any, order: list[str] | None,
                          tid: str | None, csr: dict[str, Any]) -> Answer:
        return await self._enroll_acme(key, order, tid, csr, replaces=cert_id(old))

    # -- protocol plumbing -------------------------------------------------------------

    async def est_with_cert(self, cert: x509.Certificate, op: str,
                            request: x509.CertificateSigningRequest) -> Answer:
        """An EST operation authenticated by `cert` as the TLS client certificate."""
        app = with_transport(self.h.app, cert, None)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=self.h.base_url) as c:
            r = await c.post(f"{WELL_KNOWN}/{op}", content=csr_body(request),
                             headers=PKCS10_HEADERS)
        return _est_answer(r)

    async def acme(self) -> AcmeClient:
        """This driver's one ACME account (renewals must come from the same one)."""
        if self._acme is None:
            self._acme = AcmeClient(self.h.http, f"{ACME_BASE}/acme/directory")
            await self._acme.register()
        return self._acme

    async def _scep_ra(self) -> x509.Certificate:
        from enroll.protocols.scep import signeddata

        r = await self.h.http.get("/scep", params={"operation": "GetCACert"})
        assert r.status_code == 200, r.text
        certs, _ = signeddata.degenerate_contents(r.content)
        return next(c for c in certs if not is_ca(c))

    async def _scep_answer(self, client: ScepClient, message: bytes) -> Answer:
        r = await self.h.http.post("/scep?operation=PKIOperation", content=message,
                                   headers=PKI_MESSAGE)
        assert r.status_code == 200, r.text
        reply = client.read(r.content)
        if reply.status is PKIStatus.SUCCESS:
            return Answer(reply.certificate)
        assert reply.status is PKIStatus.FAILURE, reply.status
        fail = reply.certrep.fail_info
        return Answer(None, fail.name if fail else "", reply.certrep.fail_text or "")


def _est_answer(r: httpx.Response) -> Answer:
    # 503 (with Retry-After) is the answer to a CA that cannot sign right now.
    assert r.status_code < 500 or r.status_code == 503, r.text
    if r.status_code == 200:
        return Answer(certs_from(r.content)[0])
    return Answer(None, str(r.status_code), r.text)


REFUSED = {"scep": "BAD_REQUEST", "est": "400", "acme": "badCSR"}
"""How each door says "this CSR asks for what the profile or the authorisation does not
allow" (a `BadCSR` in the core)."""
UNAUTHORIZED = {"scep": "BAD_REQUEST", "est": "401", "acme": "unauthorized"}
"""How each door refuses a credential the renewal rule does not accept."""


def ip_or_dns(name: str) -> str:
    try:
        return f"ip:{ipaddress.ip_address(name)}"
    except ValueError:
        return f"dns:{name}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def gather(*aws: Any) -> list[Any]:
    return list(await asyncio.gather(*aws))
