"""/csrattrs (RFC 7030 §4.5): what a CSR should carry, derived from the profile.

    CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
    AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }

From the profile: the key type when the profile narrows it (an ``id-ecPublicKey``
attribute naming the curve, as in the RFC 7030 §4.5.2 example; ``rsaEncryption`` with
the minimum modulus size; ``id-Ed25519``), the subject attributes it requires, the
subjectAltName extension when names are required, and challengePassword when the
endpoint requires tls-unique proof of possession (§3.5). Nothing to say -> None (204).
"""

from __future__ import annotations

from asn1crypto import core

from enroll.profiles import SUBJECT_ATTRS, Profile

EC_PUBLIC_KEY = "1.2.840.10045.2.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
ED25519 = "1.3.101.112"
CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"  # noqa: S105 - an OID
SUBJECT_ALT_NAME = "2.5.29.17"
_CURVES = {"ec-p256": "1.2.840.10045.3.1.7", "ec-p384": "1.3.132.0.34"}
_ALL_KEY_TYPES = {"rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ed25519"}


class _SetOfAny(core.SetOf):  # type: ignore[misc]
    _child_spec = core.Any


class _Attribute(core.Sequence):  # type: ignore[misc]
    _fields = [("type", core.ObjectIdentifier), ("values", _SetOfAny)]


class _AttrOrOID(core.Choice):  # type: ignore[misc]
    _alternatives = [("oid", core.ObjectIdentifier), ("attribute", _Attribute)]


class CsrAttrs(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _AttrOrOID


def _attribute(oid: str, values: list[core.Asn1Value]) -> _AttrOrOID:
    return _AttrOrOID(name="attribute", value=_Attribute({
        "type": oid, "values": [core.Any.load(v.dump()) for v in values]}))


def _key_items(key_types: tuple[str, ...]) -> list[_AttrOrOID]:
    if set(key_types) >= _ALL_KEY_TYPES - {"ed25519"}:
        return []  # every common key type is fine: nothing to ask for
    items: list[_AttrOrOID] = []
    curves = [_CURVES[k] for k in key_types if k in _CURVES]
    if curves:
        items.append(_attribute(EC_PUBLIC_KEY, [core.ObjectIdentifier(c) for c in curves]))
    rsa_sizes = sorted(int(k[4:]) for k in key_types if k.startswith("rsa-"))
    if rsa_sizes:
        items.append(_attribute(RSA_ENCRYPTION, [core.Integer(rsa_sizes[0])]))
    if "ed25519" in key_types:
        items.append(_AttrOrOID(name="oid", value=ED25519))
    return items


def build(profile: Profile, require_tls_unique: bool) -> bytes | None:
    """DER CsrAttrs for this profile, or None when there is nothing to say."""
    items = _key_items(profile.key_types)
    for field in profile.subject:
        if field.source == "required":
            items.append(_AttrOrOID(name="oid",
                                    value=SUBJECT_ATTRS[field.attr].dotted_string))
    if profile.san.require:
        items.append(_AttrOrOID(name="oid", value=SUBJECT_ALT_NAME))
    if require_tls_unique:
        items.append(_AttrOrOID(name="oid", value=CHALLENGE_PASSWORD))
    if not items:
        return None
    return bytes(CsrAttrs(items).dump())
