"""Fuzz targets: each client-input loader of enroll, fed arbitrary bytes.

A target is set up once (keys, an RA, a CA in a temporary data dir) and then called with
one input at a time. An input may be refused only with the typed error set
(`enroll.errors.EnrollError` and its subclasses: `AcmeProblem`, `ScepFailure`,
`ValidationFailed` are among them); anything else it raises is a crash, recorded by
`Target.run` with its traceback. `bench/fuzz.py` drives these with atheris; the suite's
tests/fuzz/ smoke reuses `seeds`.

What one input goes through, per target:

- ``csr``: `enroll.csr.load_csr` (DER, and PEM when the input starts with ``-----``).
- ``scep``: `parse_pkimessage`, the signature check, `envelope.decrypt` with the
  vectors' RA key, the payload's parser for the message type (`load_csr`,
  IssuerAndSubject, IssuerAndSerialNumber), and the CertRep that answers it.
- ``est``: `wire.decode_base64_body` + `load_csr` on the body; the same bytes as an
  ``Authorization`` header (`auth.basic_credentials`), as a trusted proxy's
  client-certificate header and as the ASGI TLS extension's certificate
  (`auth.read_transport`, a header from a proxy proven by its secret).
- ``acme``: `jws.parse` of the body, the JWK (`key_from_jwk`, `thumbprint`), the
  signature, then the payload as newAccount, newOrder, finalize and ARI read it
  (`fields.contact`, `fields.identifiers`, the CSR through `load_csr`,
  `ari.parse_cert_id`, an inner JWS as keyChange and EAB carry).
- ``ocsp``: the OCSP responder (`OCSPResponder.respond`) of a real CA, the database
  lookup and the signature included.
"""

from __future__ import annotations

import base64
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enroll.errors import EnrollError

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
TYPED: tuple[type[BaseException], ...] = (EnrollError,)


@dataclass
class Target:
    name: str
    one: Callable[[bytes], None]
    seeds: list[bytes]
    executions: int = 0
    crashes: int = 0
    first: dict[str, str] = field(default_factory=dict)
    """The first traceback of each distinct crash (by exception type and last frame)."""

    def run(self, data: bytes) -> None:
        """One input; a crash is counted and remembered, never raised."""
        self.executions += 1
        try:
            self.one(data)
        except TYPED:
            pass
        except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
            self.crashes += 1
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
            key = f"{type(exc).__name__} at {where}"
            if key not in self.first and len(self.first) < 50:
                self.first[key] = "".join(traceback.format_exception(exc)) + \
                    f"input (base64): {base64.b64encode(data[:4096]).decode()}\n"


def _files(*patterns: str) -> list[bytes]:
    found: list[bytes] = []
    for pattern in patterns:
        found.extend(p.read_bytes() for p in sorted(VECTORS.glob(pattern)) if p.is_file())
    return found


def _pem_to_der(pem: bytes) -> bytes:
    lines = [ln for ln in pem.splitlines() if ln and not ln.startswith(b"-----")]
    try:
        return base64.b64decode(b"".join(lines))
    except ValueError:
        return pem


def csr_seeds() -> list[bytes]:
    seeds = _files("core/*.csr.der", "core/hostile/*.csr.der")
    seeds += [_pem_to_der(p) for p in _files("core/*.csr.pem")]
    seeds += _files("core/openssl_ec_p256_san.csr.pem")
    return seeds


# -- csr -------------------------------------------------------------------------------------

def csr_target() -> Target:
    from enroll.csr import load_csr

    def one(data: bytes) -> None:
        load_csr(data, pem=data.startswith(b"-----"))

    return Target("csr", one, csr_seeds())


# -- scep ------------------------------------------------------------------------------------

def scep_target() -> Target:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from enroll.protocols.scep import envelope, pkimessage, signeddata

    from enroll.csr import load_csr
    from enroll.testing.scep_client import self_signed

    vector_ra = x509.load_pem_x509_certificate((VECTORS / "scep" / "ra.pem").read_bytes())
    vector_key = serialization.load_pem_private_key(
        (VECTORS / "scep" / "ra.key").read_bytes(), None)
    assert isinstance(vector_key, rsa.RSAPrivateKey)
    # The target's own RA is RSA-1024: an RSA-2048 decryption and CertRep signature
    # cost ~2 ms per input, and the key size is not what is being fuzzed. The vectors
    # are re-enveloped to it below (and kept as they are, with scepclient's encodings).
    ra_key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - fuzzing speed
    ra_cert = self_signed(ra_key, "fuzz RA")

    def typed(fn: Callable[..., Any], *args: Any) -> bool:
        """Run a parser that may refuse (typed); whether it accepted."""
        try:
            fn(*args)
        except EnrollError:
            return False
        return True

    def one(data: bytes) -> None:
        # A client signs with its own key, so whatever sits inside a pkiMessage (the
        # envelope, the payload) reaches the parsers below verified: each gets the raw
        # input too, not only what survives the signature check.
        typed(envelope.decrypt, data, ra_cert, ra_key, envelope.CIPHERS)
        typed(pkimessage.parse_issuer_and_subject, data)
        typed(pkimessage.parse_issuer_and_serial, data)
        message = pkimessage.parse_pkimessage(data)
        try:
            verified = typed(signeddata.verify, message.signed, signeddata.HASHES)
            typed(signeddata.signing_time, message.signed)
            if verified:
                message.signer.public_key()
            if message.signed.content is None:
                return
            payload, _ = envelope.decrypt(message.signed.content, ra_cert, ra_key,
                                          envelope.CIPHERS)
            kind = message.message_type
            if kind in ("19", "17"):
                csr = load_csr(payload)
                try:
                    csr.attributes.get_attribute_for_oid(
                        x509.oid.AttributeOID.CHALLENGE_PASSWORD)
                except x509.AttributeNotFound:
                    pass
            elif kind == "20":
                pkimessage.parse_issuer_and_subject(payload)
            elif kind in ("21", "22"):
                pkimessage.parse_issuer_and_serial(payload)
        finally:
            # Every parsed message is answered: the CertRep echoes what the request sent.
            pkimessage.build_certrep(
                status=pkimessage.PKIStatus.FAILURE, transaction_id=message.transaction_id,
                recipient_nonce=message.sender_nonce, signer=ra_cert, key=ra_key,
                fail_info=None, fail_text="x")

    seeds = _files("scep/*.der")
    client_key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - fuzzing speed
    client = self_signed(client_key, "fuzz client")
    for vector in list(seeds):
        message = pkimessage.parse_pkimessage(vector)
        assert message.signed.content is not None
        payload, cipher = envelope.decrypt(message.signed.content, vector_ra, vector_key,
                                           envelope.CIPHERS)
        resent = pkimessage.build_request(message.message_type, payload, [ra_cert], client,
                                          client_key, message.transaction_id, cipher=cipher,
                                          digest=message.signed.digest)
        seeds += [resent, pkimessage.parse_pkimessage(resent).signed.content or b"",
                  payload]
    seeds.append(pkimessage.issuer_and_serial(ra_cert.issuer, ra_cert.serial_number))
    seeds.append(pkimessage.issuer_and_subject(ra_cert.issuer, ra_cert.subject))
    return Target("scep", one, seeds)


# -- est -------------------------------------------------------------------------------------

def est_target() -> Target:
    import ipaddress

    from enroll.protocols.est import auth, wire
    from enroll.protocols.est.settings import ProxySettings

    from enroll.csr import load_csr

    proxy = ProxySettings(networks=(ipaddress.ip_network("127.0.0.1/32"),),
                          certificates=frozenset(), chain=(), secret=b"s" * 32,
                          secret_header="x-enroll-proxy-secret")  # noqa: S106 - a name

    def one(data: bytes) -> None:
        text = data.decode("latin-1")
        auth.basic_credentials(text)
        scope = {"type": "http", "headers": [(b"x-ssl-client-cert", data),
                                             (b"x-enroll-proxy-secret", b"s" * 32)],
                 "extensions": {"enroll.transport": {"peer": ("127.0.0.1", 1)},
                                "tls": {"client_cert_chain": []}}}
        auth.read_transport(scope, proxy, "x-ssl-client-cert")
        auth.read_transport({"type": "http", "extensions": {"tls": {
            "client_cert_chain": [text]}}}, None, "x")
        load_csr(wire.decode_base64_body(data))

    seeds = _files("est/*")
    seeds += [base64.encodebytes(s) for s in csr_seeds()]
    seeds += [b"Basic " + base64.b64encode(b"alice:secret")]
    seeds += [(VECTORS / "scep" / "ra.pem").read_bytes()]
    return Target("est", one, seeds)


# -- acme ------------------------------------------------------------------------------------

def acme_target() -> Target:
    from enroll.protocols.acme import ari, fields, jws

    from enroll.csr import load_csr

    def one(data: bytes) -> None:
        message = jws.parse(data)
        h = message.protected
        if "jwk" in h:
            key, alg = jws.key_from_jwk(h["jwk"])
            jws.thumbprint(jws.public_jwk(h["jwk"]))
            try:
                jws.verify(message, key, alg)
            except EnrollError:
                pass  # a bad signature is typed; read the payload anyway
        if message.post_as_get:
            return
        payload = message.payload()
        fields.contact(payload.get("contact"))
        if "identifiers" in payload:
            fields.identifiers(payload["identifiers"])
        if "csr" in payload:
            load_csr(jws.b64d(payload["csr"], "csr"))
        if "replaces" in payload:
            ari.parse_cert_id(payload["replaces"])
        for inner_name in ("externalAccountBinding", "inner"):
            inner = payload.get(inner_name)
            if isinstance(inner, dict):
                nested = jws.parse(inner)
                if "jwk" in nested.protected:
                    jws.key_from_jwk(nested.protected["jwk"])
                jws.verify_hmac(nested, b"k" * 32)

    seeds = _files("acme/*.json")
    seeds += _acme_generated()
    return Target("acme", one, seeds)


def _acme_generated() -> list[bytes]:
    """Requests a client sends, signed for real: newOrder, finalize (with each CSR
    vector), keyChange-like inner JWS, ARI replaces."""
    import json

    from cryptography.hazmat.primitives.asymmetric import ec
    from enroll.protocols.acme.jws import b64e

    from enroll.testing.acme_client import jwk_of
    from enroll.testing.acme_client import jws as sign_jws

    key = ec.generate_private_key(ec.SECP256R1())
    url = "https://acme.test/acme/new-order"

    def req(payload: Any) -> bytes:
        protected = {"alg": "ES256", "url": url, "nonce": "n" * 48,
                     "jwk": jwk_of(key.public_key())}
        return json.dumps(sign_jws(key, protected, payload)).encode()

    out = [req({"identifiers": [{"type": "dns", "value": "a.example"},
                                {"type": "ip", "value": "192.0.2.1"}],
                "replaces": "aGVsbG8.AQI"}),
           req({"termsOfServiceAgreed": True, "contact": ["mailto:a@example.com"]}),
           req({"inner": sign_jws(key, {"alg": "ES256", "url": url,
                                        "jwk": jwk_of(key.public_key())},
                                  {"account": "x", "oldKey": jwk_of(key.public_key())})})]
    out += [req({"csr": b64e(c)}) for c in csr_seeds()[:6]]
    return out


# -- ocsp ------------------------------------------------------------------------------------

def ocsp_target() -> Target:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    from enroll.context import build_context
    from enroll.testing import test_config

    data_dir = Path(tempfile.mkdtemp(prefix="enroll-fuzz-ocsp-"))
    ctx = build_context(test_config(data_dir, f"sqlite:///{data_dir / 'enroll.db'}"))
    ca = ctx.cas.get(ctx.cas.names()[0]).certificate

    def one(data: bytes) -> None:
        ctx.ocsp.respond(data)

    seeds = _files("ocsp/*.der")
    for algorithm in (hashes.SHA1(), hashes.SHA256()):  # noqa: S303 - RFC 6960 default
        for serial in (1, 2**159 - 1):
            builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
                _hash(ca.subject.public_bytes(), algorithm),
                _hash(_key_bits(ca), algorithm), serial, algorithm)
            builder = builder.add_extension(x509.OCSPNonce(b"\x01" * 16), critical=False)
            seeds.append(builder.build().public_bytes(serialization.Encoding.DER))
    return Target("ocsp", one, seeds)


def _hash(data: bytes, algorithm: Any) -> bytes:
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _key_bits(cert: Any) -> bytes:
    from asn1crypto import x509 as ax509
    from cryptography.hazmat.primitives import serialization

    parsed = ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    return bytes(parsed["tbs_certificate"]["subject_public_key_info"]["public_key"]
                 .contents[1:])


TARGETS: dict[str, Callable[[], Target]] = {
    "csr": csr_target, "scep": scep_target, "est": est_target, "acme": acme_target,
    "ocsp": ocsp_target,
}
