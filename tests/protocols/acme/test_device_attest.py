"""device-attest-01 with the ``apple`` format (draft-ietf-acme-device-attest), over HTTP
through the app: attestations are made here by a test root configured as the endpoint's
trust anchor (root -> intermediate -> leaf with Apple's extensions), CBOR-encoded like a
device's. A device that got a certificate over SCEP gets its ACME successor linked
``attested`` to it, identity the serial; every bad attestation makes the challenge
invalid with badAttestationStatement, and nothing is issued."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AttributeOID, NameOID
from enroll.plugins.attestation import apple
from harness import CHALLENGE, Harness, acme_client, problem, scep_section

from enroll.attestation import AttestationContext, AttestationRefused, AttestedIdentity
from enroll.crypto.keys import spki_sha256
from enroll.hookspecs import hookimpl
from enroll.testing.acme_client import AcmeClient
from enroll.testing.scep_client import ScepClient

SERIAL = "C02TEST1234"
UDID = "00008030-001A2B3C4D5E6F70"
NS = "urn:ietf:params:acme:error:"
PROFILE = {
    "ca": "issuing", "validity": "365d", "key_usage": ["digital_signature"],
    "extended_key_usage": ["client_auth"], "identity": "subject.serialNumber",
    "subject": {"serialNumber": "required"},
    "key_types": ["ec-p256", "ec-p384"], "link_renewals": "identity",
    "device_id": "subject.serialNumber",
}


def _ca(name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, Any] | None
        ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA384()))
    return cert, key


class Apple:
    """A test "Apple": a root, an intermediate, and devices' attestation leaves."""

    def __init__(self) -> None:
        self.root, self.root_key = _ca("Test Attestation Root", ec.generate_private_key(
            ec.SECP384R1()), None)
        self.sub, self.sub_key = _ca("Test Attestation Sub CA", ec.generate_private_key(
            ec.SECP384R1()), (self.root.subject, self.root_key))

    def leaf(self, device_key: Any, nonce: bytes | None, serial: str = SERIAL,
             udid: str = UDID) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
                   .issuer_name(self.sub.subject).public_key(device_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.UnrecognizedExtension(apple.OID_SERIAL,
                                                             serial.encode()), False)
                   .add_extension(x509.UnrecognizedExtension(apple.OID_UDID,
                                                             udid.encode()), False))
        if nonce is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(apple.OID_NONCE,
                                                                       nonce), False)
        return builder.sign(self.sub_key, hashes.SHA256())

    def att_obj(self, device_key: Any, token: str, **kw: Any) -> bytes:
        """What an Apple device answers: nonce = SHA-256(token)."""
        leaf = self.leaf(device_key, kw.pop("nonce", hashlib.sha256(token.encode()).digest()),
                         **kw)
        der = serialization.Encoding.DER
        return cbor2.dumps({"fmt": "apple", "attStmt": {
            "x5c": [leaf.public_bytes(der), self.sub.public_bytes(der)]},
            "authData": b"\x00" * 37})


@pytest.fixture
def apple_ca() -> Apple:
    return Apple()


@pytest.fixture
def device(harness_factory: Callable[..., Harness], apple_ca: Apple,
           tmp_path: Path) -> Harness:
    """SCEP and an ACME endpoint ``devices`` (device-attest-01, the test root as the
    ``apple`` anchor) on one profile that links renewals by identity."""
    root_pem = tmp_path / "attestation-root.pem"
    root_pem.write_bytes(apple_ca.root.public_bytes(serialization.Encoding.PEM))
    return harness_factory(
        base_url="https://acme.test", extra_profiles={"apple-device": PROFILE},
        **scep_section(profile="apple-device"),
        acme={"endpoints": {
            "default": {},
            "devices": {"profile": "apple-device", "challenges": ["device-attest-01"],
                        "attestation_roots": {"apple": str(root_pem)}}}})


def _device_csr(key: Any, serial: str = SERIAL, challenge: str | None = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
        x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


async def _scep_enroll(h: Harness, key: Any) -> x509.Certificate:
    from enroll.protocols.scep import signeddata

    r = await h.http.get("/scep", params={"operation": "GetCACert"})
    certs, _ = signeddata.degenerate_contents(r.content)
    ra = next(c for c in certs if not _is_ca(c))
    client = ScepClient(ra, key=key)
    csr = x509.load_der_x509_csr(_device_csr(key, challenge=CHALLENGE))
    message, _ = client.pkcs_req(csr)
    r = await h.http.post("/scep?operation=PKIOperation", content=message,
                          headers={"Content-Type": "application/x-pki-message"})
    reply = client.read(r.content)
    assert reply.certificate is not None, (reply.status, reply.certrep.fail_text)
    cert: x509.Certificate = reply.certificate
    return cert


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


async def _devices_client(h: Harness) -> AcmeClient:
    acme = acme_client(h, endpoint="devices")
    await acme.register()
    return acme


def test_the_embedded_anchor_is_apples_enterprise_attestation_root() -> None:
    (root,) = apple.default_roots()
    der = root.public_bytes(serialization.Encoding.DER)
    assert root.subject.rfc4514_string() == \
        "C=US,O=Apple Inc.,CN=Apple Enterprise Attestation Root CA"
    # The copy step-ca embeds (citing https://www.apple.com/certificateauthority/
    # private/): self-signed, valid to 2047. A changed byte fails here.
    assert hashlib.sha256(der).hexdigest() == \
        "ccf59ef8fcb3017d97f8b5fa6fa90e7a3f9283f76b55ac6cf6eda8b8b949f05b"
    root.verify_directly_issued_by(root)


async def test_an_attested_device_gets_its_serial_as_identity_linked_to_its_scep_cert(
        device: Harness, apple_ca: Apple) -> None:
    scep_key = ec.generate_private_key(ec.SECP256R1())
    old = await _scep_enroll(device, scep_key)
    device_key = ec.generate_private_key(ec.SECP256R1())
    acme = await _devices_client(device)
    pem = await acme.issue_device(
        SERIAL, lambda token, _ka: apple_ca.att_obj(device_key, token),
        _device_csr(device_key))
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    assert leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == SERIAL
    assert leaf.public_key() == device_key.public_key()
    record = device.ctx.authority.certificate(leaf.serial_number)
    assert record is not None
    assert record.identity == f"subject.serialNumber:{SERIAL}"
    assert record.device_id == SERIAL and record.protocol == "acme"
    assert record.replaces == format(old.serial_number, "x") and record.link == "attested"
    (row,) = [r for r in device.rows("identities") if r["identity"] == record.identity]
    assert row["certificates"] == 2 and row["serial"] == record.serial_hex
    authz = next(a for a in device.rows("acme_authzs") if a["type"] == "permanent-identifier")
    assert SERIAL in authz["attested"] and UDID in authz["attested"]


async def test_the_udid_is_an_identifier_too_and_the_device_id_stays_the_serial(
        device: Harness, apple_ca: Apple) -> None:
    device_key = ec.generate_private_key(ec.SECP256R1())
    acme = await _devices_client(device)
    pem = await acme.issue_device(
        UDID, lambda token, _ka: apple_ca.att_obj(device_key, token),
        _device_csr(device_key))
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    record = device.ctx.authority.certificate(leaf.serial_number)
    assert record is not None and record.device_id == SERIAL


async def _refused(h: Harness, att_obj: Callable[[str, str], bytes] | bytes,
                   detail: str, value: str = SERIAL) -> dict[str, Any]:
    issued = h.counts()[0]
    acme = await _devices_client(h)
    order_url, order = await acme.new_device_order(value)
    authz_url = order["authorizations"][0]
    authz = (await acme.get(authz_url)).json()
    assert [c["type"] for c in authz["challenges"]] == ["device-attest-01"]
    chall = authz["challenges"][0]
    body = att_obj if isinstance(att_obj, bytes) else \
        att_obj(chall["token"], acme.key_authorization(chall["token"]))
    r = await acme.answer_device_attest(chall["url"], body)
    assert r.status_code == 200, r.text
    answered = r.json()
    assert answered["status"] == "invalid"
    assert answered["error"]["type"] == NS + "badAttestationStatement", answered
    assert detail in answered["error"]["detail"], answered
    assert (await acme.get(authz_url)).json()["status"] == "invalid"
    assert (await acme.get(order_url)).json()["status"] == "invalid"
    assert h.counts()[0] == issued
    return dict(answered["error"])


async def test_a_nonce_that_is_not_the_challenges_is_refused(
        device: Harness, apple_ca: Apple) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    await _refused(device, lambda token, _ka: apple_ca.att_obj(
        key, token, nonce=hashlib.sha256(b"another challenge").digest()), "nonce")
    await _refused(device, lambda token, _ka: apple_ca.att_obj(key, token, nonce=None),
                   "no nonce")


async def test_an_attestation_of_another_device_is_refused(
        device: Harness, apple_ca: Apple) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    error = await _refused(device, lambda token, _ka: apple_ca.att_obj(
        key, token, serial="C02OTHER999", udid="00008030-FFFF"), "another identifier")
    (sub,) = error["subproblems"]
    assert sub["type"] == NS + "rejectedIdentifier"
    assert sub["identifier"] == {"type": "permanent-identifier", "value": SERIAL}


async def test_a_chain_to_an_untrusted_root_is_refused(
        device: Harness, apple_ca: Apple) -> None:
    stranger = Apple()  # a root nobody configured
    key = ec.generate_private_key(ec.SECP256R1())
    await _refused(device, lambda token, _ka: stranger.att_obj(key, token),
                   "trusted attestation root")


@pytest.mark.parametrize("att_obj, detail", [
    (b"\xff\x00 not cbor", "not a CBOR"),
    (cbor2.dumps([1, 2, 3]), "not a CBOR map"),
    (cbor2.dumps({"fmt": "apple", "attStmt": {"x5c": [b"junk"]}, "authData": b""}),
     "does not parse"),
    (cbor2.dumps({"fmt": "apple", "attStmt": {}, "authData": b""}), "x5c"),
    (cbor2.dumps({"fmt": "packed", "attStmt": {}, "authData": b""}), "unsupported"),
    (cbor2.dumps({"fmt": "apple"}) + b"\x00", "not a CBOR"),
    (b"", "needs attObj"),
])
async def test_a_malformed_attestation_object_is_refused(
        device: Harness, att_obj: bytes, detail: str) -> None:
    await _refused(device, att_obj, detail)


async def test_a_csr_for_another_key_than_the_attested_one_is_refused(
        device: Harness, apple_ca: Apple) -> None:
    device_key = ec.generate_private_key(ec.SECP256R1())
    acme = await _devices_client(device)
    order_url, order = await acme.new_device_order(SERIAL)
    authz = (await acme.get(order["authorizations"][0])).json()
    chall = authz["challenges"][0]
    r = await acme.answer_device_attest(chall["url"],
                                        apple_ca.att_obj(device_key, chall["token"]))
    assert r.json()["status"] == "valid", r.text
    order = (await acme.get(order_url)).json()
    assert order["status"] == "ready"
    other = ec.generate_private_key(ec.SECP256R1())
    r = await acme.post(order["finalize"], {"csr": _b64(_device_csr(other))}, check=False)
    problem(r, "badCSR", 400)
    assert "attested" in r.json()["detail"]
    # Nor may the CSR claim another device's serial for the attested key.
    r = await acme.post(order["finalize"],
                        {"csr": _b64(_device_csr(device_key, serial="C02OTHER999"))},
                        check=False)
    problem(r, "badCSR", 400)
    assert device.counts()[0] == 0
    assert (await acme.get(order_url)).json()["status"] == "ready"


async def test_endpoints_without_device_attest_refuse_permanent_identifiers(
        device: Harness) -> None:
    acme = acme_client(device)
    await acme.register()
    d = await acme.directory()
    r = await acme.post(d["newOrder"], {"identifiers": [
        {"type": "permanent-identifier", "value": SERIAL}]}, check=False)
    problem(r, "unsupportedIdentifier", 400)
    # A DNS name's authorization never offers device-attest-01.
    _, order = await acme.new_order(["host.test.example"])
    authz = (await acme.get(order["authorizations"][0])).json()
    assert "device-attest-01" not in {c["type"] for c in authz["challenges"]}


def _b64(der: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(der).rstrip(b"=").decode()


async def test_a_nonce_over_the_key_authorization_is_accepted_too(
        device: Harness, apple_ca: Apple) -> None:
    device_key = ec.generate_private_key(ec.SECP256R1())
    acme = await _devices_client(device)
    await acme.issue_device(SERIAL, lambda token, ka: apple_ca.att_obj(
        device_key, token, nonce=hashlib.sha256(ka.encode()).digest()),
        _device_csr(device_key))
    assert device.counts()[0] == 1


class OtherFormat:
    """A third-party verifier for a made-up format: the hook is the whole contract."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.seen: list[AttestationContext] = []

    @hookimpl
    def enroll_verify_attestation(self, context: AttestationContext
                                  ) -> AttestedIdentity | None:
        if context.fmt != "test-tpm":
            return None
        self.seen.append(context)
        if context.statement.get("nonce") != context.token:
            raise AttestationRefused("stale")
        return AttestedIdentity("test-tpm", frozenset({SERIAL}),
                                spki_sha256(self.key.public_key()), SERIAL)


async def test_a_plugin_verifies_its_own_format(
        harness_factory: Callable[..., Harness], tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    plugin = OtherFormat(key)
    h = harness_factory(base_url="https://acme.test", extra_profiles={"apple-device": PROFILE},
                        extra_plugins=(plugin,), acme={"endpoints": {"devices": {
                            "profile": "apple-device", "challenges": ["device-attest-01"]}}})
    acme = await _devices_client(h)
    await acme.issue_device(SERIAL, lambda token, _ka: cbor2.dumps(
        {"fmt": "test-tpm", "attStmt": {"nonce": token}, "authData": b""}), _device_csr(key))
    (context,) = plugin.seen
    assert context.identifier == ("permanent-identifier", SERIAL) and context.roots is None
    error = await _refused(h, cbor2.dumps({"fmt": "test-tpm", "attStmt": {"nonce": "old"},
                                           "authData": b""}), "stale")
    assert error["status"] == 400


def test_an_unreadable_attestation_root_fails_start_up(
        harness_factory: Callable[..., Harness], tmp_path: Path) -> None:
    from enroll.errors import ConfigError

    with pytest.raises(ConfigError, match="attestation_roots.apple"):
        harness_factory(acme={"endpoints": {"devices": {
            "challenges": ["device-attest-01"],
            "attestation_roots": {"apple": str(tmp_path / "missing.pem")}}}})
