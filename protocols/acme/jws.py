"""Flattened JWS as ACME uses it (RFC 8555 §6.2, RFC 7515), verified with `cryptography`
directly: no josepy object layer on the hot path. Pure functions, bounded input."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enroll import bounded_json
from enroll.errors import MalformedInput

from .problems import AcmeProblem, bad_signature_algorithm, malformed

MAX_JWS_BYTES = 64 * 1024
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
_EC = {"P-256": (ec.SECP256R1(), "ES256", 32, hashes.SHA256()),
       "P-384": (ec.SECP384R1(), "ES384", 48, hashes.SHA384()),
       # RFC 7518 §3.4: ES512 is P-521 with SHA-512; each of r and s is 66 octets.
       "P-521": (ec.SECP521R1(), "ES512", 66, hashes.SHA512())}
_ALG_CRV = {alg: crv for crv, (_, alg, *_) in _EC.items()}
# RFC 8555 §7.3.4: the MAC of an external account binding; any the server supports.
HMAC_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_CRV = {curve.name: crv for crv, (curve, *_) in _EC.items()}


def b64d(text: Any, what: str = "value") -> bytes:
    """base64url without padding (RFC 7515 §2); anything else is malformed."""
    if not isinstance(text, str) or len(text) > MAX_JWS_BYTES * 2:
        raise malformed(f"{what} is not base64url")
    if "=" in text or "+" in text or "/" in text:
        raise malformed(f"{what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise malformed(f"{what} is not base64url") from None


def load_json(data: bytes | str, what: str) -> Any:
    """Client JSON through the one bounded loader (size and depth): malformed if not."""
    try:
        return bounded_json.loads(data, what=what, max_bytes=MAX_JWS_BYTES)
    except MalformedInput as exc:
        raise malformed(exc.detail) from None


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Jws:
    protected: dict[str, Any]
    protected_b64: str
    payload_b64: str
    signature: bytes

    @property
    def signing_input(self) -> bytes:
        return f"{self.protected_b64}.{self.payload_b64}".encode()

    @property
    def post_as_get(self) -> bool:
        # RFC 8555 §6.3: POST-as-GET has an empty payload string.
        return self.payload_b64 == ""

    def payload(self) -> Any:
        """The payload parsed as a JSON object; malformed if it is not one."""
        if self.payload_b64 == "":
            raise malformed("this resource needs a payload, not POST-as-GET")
        value = load_json(b64d(self.payload_b64, "payload"), "payload")
        if not isinstance(value, dict):
            raise malformed("payload is not a JSON object")
        return value


def parse(body: bytes | dict[str, Any]) -> Jws:
    """A flattened JWS with a protected header only (RFC 8555 §6.2)."""
    if isinstance(body, bytes):
        if len(body) > MAX_JWS_BYTES:
            raise malformed("JWS too large")
        obj = load_json(body, "body")
    else:
        obj = body
    if not isinstance(obj, dict) or "signatures" in obj or "header" in obj:
        raise malformed("expected a flattened JWS with a protected header only")
    if set(obj) - {"protected", "payload", "signature"}:
        raise malformed("unexpected JWS members")
    protected_b64, payload_b64 = obj.get("protected"), obj.get("payload")
    if not isinstance(protected_b64, str) or not isinstance(payload_b64, str):
        raise malformed("JWS needs protected and payload strings")
    if not (protected_b64.isascii() and payload_b64.isascii()):
        # JSON escapes can carry any code point, a lone surrogate too: base64url is ASCII.
        raise malformed("protected and payload must be base64url")
    protected = load_json(b64d(protected_b64, "protected header"), "protected header")
    if not isinstance(protected, dict):
        raise malformed("protected header is not a JSON object")
    return Jws(protected, protected_b64, payload_b64, b64d(obj.get("signature"), "signature"))


def _int(jwk: dict[str, Any], name: str, minimal: bool) -> int:
    """An RSA member: unsigned big-endian with no leading zero octet (RFC 7518 §6.3.1.1
    for n, §6.3.1.2 for e), so one key has one encoding and one thumbprint."""
    octets = b64d(jwk.get(name), f"jwk.{name}")
    if not octets or (minimal and octets[0] == 0):
        raise malformed(f"jwk.{name} must be a minimal big-endian integer (no leading "
                        "zero octets, RFC 7518 §6.3.1)")
    return int.from_bytes(octets, "big")


def key_from_jwk(jwk: Any, *, minimal: bool = True) -> tuple[PublicKey, str]:
    """The public key and the one `alg` pinned to it (RFC 8555 §6.2). A client's RSA JWK
    must encode n and e minimally (`malformed` otherwise); ``minimal=False`` reads a JWK
    stored before that rule (an account made then keeps working)."""
    if not isinstance(jwk, dict):
        raise malformed("jwk is not an object")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    crv = crv if isinstance(crv, str) else None
    try:
        if kty == "RSA":
            n, e = _int(jwk, "n", minimal), _int(jwk, "e", minimal)
            if n.bit_length() < 2048 or n.bit_length() > 8192:
                raise AcmeProblem("badPublicKey", "RSA keys must be 2048 to 8192 bits")
            if e.bit_length() > 64:
                # A verification costs one squaring per exponent bit; OpenSSL refuses
                # such exponents for large moduli anyway.
                raise AcmeProblem("badPublicKey", "RSA public exponent is too large")
            return rsa.RSAPublicNumbers(e, n).public_key(), "RS256"
        if kty == "EC" and crv in _EC:
            curve, alg, size, _ = _EC[crv]
            x, y = b64d(jwk.get("x"), "jwk.x"), b64d(jwk.get("y"), "jwk.y")
            if len(x) != size or len(y) != size:
                raise AcmeProblem("badPublicKey", "EC coordinates have the wrong length")
            key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"),
                                                int.from_bytes(y, "big"), curve).public_key()
            return key, alg
        if kty == "OKP" and crv == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(
                b64d(jwk.get("x"), "jwk.x")), "EdDSA"
    except ValueError:
        raise AcmeProblem("badPublicKey", "the JWK is not a valid public key") from None
    raise AcmeProblem("badPublicKey", "unsupported key type (RSA, EC P-256/P-384/P-521, Ed25519)")


def verify(jws: Jws, key: PublicKey, alg: str) -> None:
    """Check `alg` is the one pinned to the key, then the signature."""
    if jws.protected.get("alg") != alg:
        raise bad_signature_algorithm(f"this key signs with {alg}") from None
    sig, data = jws.signature, jws.signing_input
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            _, _, size, digest = _EC[_ALG_CRV[alg]]
            if len(sig) != 2 * size:
                raise InvalidSignature
            der = encode_dss_signature(int.from_bytes(sig[:size], "big"),
                                       int.from_bytes(sig[size:], "big"))
            key.verify(der, data, ec.ECDSA(digest))
        else:
            key.verify(sig, data)
    except InvalidSignature:
        raise malformed("JWS signature is invalid") from None


def verify_hmac(jws: Jws, secret: bytes) -> None:
    """External account binding (RFC 8555 §7.3.4): a MAC with the EAB key, HS256, HS384
    or HS512 (the client chooses; the key is the same). Any other `alg` (``none``, an
    asymmetric one) is ``badSignatureAlgorithm`` with the MACs supported (§6.2)."""
    alg = jws.protected.get("alg")
    digest = HMAC_ALGORITHMS.get(alg) if isinstance(alg, str) else None
    if digest is None:
        raise AcmeProblem("badSignatureAlgorithm", "external account binding uses "
                          + ", ".join(HMAC_ALGORITHMS), algorithms=list(HMAC_ALGORITHMS))
    mac = hmac.new(secret, jws.signing_input, digest).digest()
    if not hmac.compare_digest(mac, jws.signature):
        raise unauthorized_eab()


def unauthorized_eab() -> AcmeProblem:
    return AcmeProblem("unauthorized", "external account binding is invalid", 403)


def jwk_of(public_key: object) -> dict[str, str]:
    """The public JWK of a key (RFC 7518 §6, RFC 8037 §2), for the key types
    `key_from_jwk` accepts. Raises `ValueError` for any other key: such a key can never be
    an account key. The client signs with the same JWK the server computes."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        crv = _CRV.get(public_key.curve.name)
        if crv is None:
            raise ValueError(f"no JWK for curve {public_key.curve.name}")
        size = _EC[crv][2]
        n = public_key.public_numbers()
        return {"kty": "EC", "crv": crv, "x": b64e(n.x.to_bytes(size, "big")),
                "y": b64e(n.y.to_bytes(size, "big"))}
    if isinstance(public_key, rsa.RSAPublicKey):
        rn = public_key.public_numbers()
        # RFC 7518 §6.3.1: n and e as unsigned big-endian, no leading zero octets.
        return {"kty": "RSA", "n": b64e(rn.n.to_bytes((rn.n.bit_length() + 7) // 8, "big")),
                "e": b64e(rn.e.to_bytes((rn.e.bit_length() + 7) // 8, "big"))}
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return {"kty": "OKP", "crv": "Ed25519", "x": b64e(public_key.public_bytes_raw())}
    raise ValueError(f"no JWK for a {type(public_key).__name__}")


def canonical_jwk(jwk: Any) -> tuple[PublicKey, str, dict[str, str]]:
    """The key, its `alg`, and its JWK re-encoded from the parsed key (`jwk_of`): only
    the RFC 7638 members, integers minimal, coordinates full length, base64url without
    stray bits. Thumbprints and stored account keys are computed from this, never from
    the client's members, so one key is one account."""
    key, alg = key_from_jwk(jwk)
    return key, alg, jwk_of(key)


def canonical_thumbprint(jwk: Any) -> str:
    """The RFC 7638 thumbprint of the key a client's JWK encodes (see `canonical_jwk`)."""
    return thumbprint(canonical_jwk(jwk)[2])


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) over the required members, as given:
    pass a canonical JWK (`canonical_jwk`, a stored account's)."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"),
                "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canon = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64e(hashlib.sha256(canon.encode()).digest())


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """Only the public members we store (drop private or extra members)."""
    keep = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y"),
            "OKP": ("kty", "crv", "x")}[jwk["kty"]]
    return {k: jwk[k] for k in keep}
