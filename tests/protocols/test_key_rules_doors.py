"""The core's key and name rules through every door, over real HTTP requests into the
app: SCEP PKCSReq, EST simpleenroll, ACME finalize (after real http-01 validation on
loopback).

- weak keys (e = 3, a Fermat-weak key) are refused with the door's error (SCEP failInfo
  badRequest, EST 400, ACME badCSR) and nothing is stored;
- a key revoked for keyCompromise (by the core, and for ACME also by revokeCert signed
  with the certificate's key) is refused for any new request, until an operator
  unblocks it;
- URI and e-mail names match on boundaries (SCEP and EST: ACME carries DNS and IP
  identifiers only, so its names are covered by tests/protocols/acme).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import weak_keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AttributeOID
from enroll.protocols.acme.jws import b64e
from enroll.protocols.scep import signeddata
from enroll.protocols.scep.failinfo import FailInfo
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import (
    ACME_BASE,
    ALICE,
    CHALLENGE,
    NS,
    PKI_MESSAGE,
    Harness,
    LocalDns,
    acme_client,
    acme_section,
    est_section,
    scep_section,
)

from enroll import key_blocklist
from enroll.crypto.keys import spki_sha256
from enroll.testing import make_csr
from enroll.testing.acme_client import AcmeError, Http01Responder
from enroll.testing.acme_client import make_csr as acme_csr
from enroll.testing.est_client import PKCS10_HEADERS, WELL_KNOWN, certs_from, csr_body
from enroll.testing.scep_client import ScepClient

DOORS = ("scep", "est", "acme")
NAMES_PROFILE = {"names": {
    "ca": "issuing", "extended_key_usage": ["client_auth"], "subject": {"CN": "csr"},
    "identity": "subject.CN",  # a device named by its CN, with URI and e-mail names
    "san": {"uri": ["spiffe://corp/ns/prod", "https://corp.example"],
            "email": ["corp.example", "*.corp.example"]}}}


@pytest.fixture
def local_dns() -> Iterator[LocalDns]:
    server = LocalDns()
    yield server
    server.close()


@pytest.fixture
async def responder() -> AsyncIterator[Http01Responder]:
    http01 = Http01Responder()
    await http01.start()
    yield http01
    await http01.close()


@dataclass
class Answer:
    """What a door answered to one enrollment: the certificate, or the refusal."""

    certificate: x509.Certificate | None
    refusal: Any = None
    detail: str = ""


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


class Door:
    """One protocol's enrollment over HTTP, in an async test (one event loop)."""

    def __init__(self, name: str, h: Harness, responder: Http01Responder) -> None:
        self.name, self.h, self.responder = name, h, responder
        self.acme = acme_client(h, ec.generate_private_key(ec.SECP256R1())) \
            if name == "acme" else None

    async def enroll(self, key: Any, cn: str = "host.test.example",
                     uris: tuple[str, ...] = (), emails: tuple[str, ...] = ()) -> Answer:
        if self.name == "scep":
            return await self._scep(key, cn, uris, emails)
        if self.name == "est":
            return await self._est(key, cn, uris, emails)
        assert not uris and not emails, "ACME carries DNS and IP identifiers only"
        return await self._acme(key, cn)

    async def _scep(self, key: Any, cn: str, uris: tuple[str, ...],
                    emails: tuple[str, ...]) -> Answer:
        r = await self.h.http.get("/scep", params={"operation": "GetCACert"})
        certs, _ = signeddata.degenerate_contents(r.content)
        ra = next(c for c in certs if not _is_ca(c))
        client = ScepClient(ra, key=key)  # the CSR key signs the pkiMessage too
        csr = make_csr(key, cn=cn, uris=uris, emails=emails,
                       attributes=[(AttributeOID.CHALLENGE_PASSWORD, CHALLENGE.encode())])
        message, _ = client.pkcs_req(csr)
        r = await self.h.http.post("/scep?operation=PKIOperation", content=message,
                                   headers=PKI_MESSAGE)
        assert r.status_code == 200, r.text
        reply = client.read(r.content)
        if reply.status is PKIStatus.SUCCESS:
            return Answer(reply.certificate)
        return Answer(None, reply.certrep.fail_info)

    async def _est(self, key: Any, cn: str, uris: tuple[str, ...],
                   emails: tuple[str, ...]) -> Answer:
        csr = make_csr(key, cn=cn, uris=uris, emails=emails)
        r = await self.h.http.post(f"{WELL_KNOWN}/simpleenroll", content=csr_body(csr),
                                   headers=PKCS10_HEADERS, auth=ALICE)
        if r.status_code == 200:
            return Answer(certs_from(r.content)[0])
        return Answer(None, r.status_code, r.text)

    async def _acme(self, key: Any, cn: str) -> Answer:
        assert self.acme is not None
        if self.acme.kid is None:
            await self.acme.register()
        try:
            pem = await self.acme.issue([cn], self.responder, csr=acme_csr([cn], key))
        except AcmeError as exc:
            return Answer(None, (exc.problem.get("type"), exc.response.status_code),
                          exc.problem.get("detail", ""))
        return Answer(x509.load_pem_x509_certificates(pem.encode())[0])

    def assert_refused(self, answer: Answer, detail: str) -> None:
        """The door's own error for `BadCSR`."""
        assert answer.certificate is None
        if self.name == "scep":
            assert answer.refusal is FailInfo.BAD_REQUEST
        elif self.name == "est":
            assert answer.refusal == 400
            assert detail in answer.detail, answer.detail
        else:
            assert answer.refusal == (NS + "badCSR", 400)
            assert detail in answer.detail, answer.detail


@pytest.fixture
def door_factory(harness_factory: Callable[..., Harness], local_dns: LocalDns,
                 responder: Http01Responder) -> Callable[..., Door]:
    def make(name: str, extra_profiles: dict[str, Any] | None = None,
             **endpoint: Any) -> Door:
        if name == "scep":
            h = harness_factory(extra_profiles=extra_profiles, **scep_section(**endpoint))
        elif name == "est":
            h = harness_factory(base_url="https://testserver", listener=True,
                                extra_profiles=extra_profiles, **est_section(**endpoint))
        else:
            h = harness_factory(base_url=ACME_BASE, extra_profiles=extra_profiles,
                                **acme_section(local_dns, responder.port))
        return Door(name, h, responder)

    return make


# -- weak keys --------------------------------------------------------------------------

@pytest.mark.parametrize("door_name", DOORS)
async def test_weak_keys_are_refused_by_every_door_and_nothing_is_stored(
        door_factory: Callable[..., Door], door_name: str) -> None:
    door = door_factory(door_name)
    for key, detail in ((weak_keys.exponent_key(3), "RSA public exponent 3 is not allowed"),
                        (weak_keys.fermat_key(), "factors by Fermat's method")):
        door.assert_refused(await door.enroll(key), detail)
        assert door.h.counts() == (0, 0)
    good = await door.enroll(rsa.generate_private_key(65537, 2048))
    assert good.certificate is not None  # the same door, an ordinary key: issued
    assert door.h.counts() == (1, 1)


# -- the blocklist ----------------------------------------------------------------------

async def _revoke_by_acme_with_the_certificate_key(door: Door, key: Any,
                                                   cert: x509.Certificate) -> None:
    assert door.acme is not None
    d = await door.acme.directory()
    r = await door.acme.post(d["revokeCert"], {
        "certificate": b64e(cert.public_bytes(serialization.Encoding.DER)), "reason": 1},
        use_jwk=True, key=key)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("door_name", "revoker"), [
    ("scep", "core"), ("est", "core"), ("acme", "core"), ("acme", "revokeCert")])
async def test_a_key_revoked_for_key_compromise_is_refused_by_every_door_until_unblocked(
        door_factory: Callable[..., Door], door_name: str, revoker: str) -> None:
    door = door_factory(door_name)
    key = rsa.generate_private_key(65537, 2048)
    first = await door.enroll(key)
    assert first.certificate is not None
    if revoker == "core":
        door.h.ctx.authority.revoke(first.certificate.serial_number,
                                    x509.ReasonFlags.key_compromise, "operator")
    else:
        await _revoke_by_acme_with_the_certificate_key(door, key, first.certificate)
    fingerprint = spki_sha256(key.public_key())
    with door.h.ctx.db.read() as tx:
        assert key_blocklist.is_blocked(tx, fingerprint)
    assert door.h.counts() == (1, 1)

    door.assert_refused(await door.enroll(key, "again.test.example"), "this key is blocked")
    assert door.h.counts() == (1, 1)
    if door.acme is not None:  # nor can it become an ACME account key
        other = acme_client(door.h, key)
        d = await other.directory()
        r = await other.post(d["newAccount"], {"termsOfServiceAgreed": True},
                             use_jwk=True, check=False)
        assert (r.status_code, r.json()["type"]) == (400, NS + "badPublicKey")

    with door.h.ctx.db.write() as tx:
        assert key_blocklist.unblock(tx, fingerprint, actor="operator",
                                     now=door.h.ctx.clock.now())
    after = await door.enroll(key, "after.test.example")
    assert after.certificate is not None
    assert door.h.counts() == (2, 2)


# -- names on boundaries (SCEP and EST) --------------------------------------------------

@pytest.mark.parametrize("door_name", ["scep", "est"])
async def test_uri_and_email_names_match_on_boundaries_through_the_door(
        door_factory: Callable[..., Door], door_name: str) -> None:
    door = door_factory(door_name, extra_profiles=NAMES_PROFILE, profile="names")
    key = ec.generate_private_key(ec.SECP256R1())
    for names, detail in (
            ({"uris": ("spiffe://corp/ns/production",)}, "is not allowed by profile"),
            ({"uris": ("spiffe://corporate/ns/prod",)}, "is not allowed by profile"),
            ({"uris": ("https://corp.example.evil.net/",)}, "is not allowed by profile"),
            ({"uris": ("spiffe://corp/ns/prod/../admin",)}, "dot segments"),
            ({"uris": ("https://u@corp.example/",)}, "userinfo"),
            ({"emails": ("alice@evilcorp.example",)}, "is not allowed by profile"),
            ({"emails": ("alice@corp.example.evil.net",)}, "is not allowed by profile"),
            ({"emails": ("a b@corp.example",)}, "local part")):
        door.assert_refused(await door.enroll(key, "device", **names), detail)
        assert door.h.counts() == (0, 0)
    ok = await door.enroll(key, "device", uris=("spiffe://corp/ns/prod/sa/api",
                                                "https://CORP.example/x"),
                           emails=("alice@corp.example", "bob@eu.corp.example"))
    assert ok.certificate is not None
    sans = ok.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://corp/ns/prod/sa/api", "https://CORP.example/x"]
    assert door.h.counts() == (1, 1)
