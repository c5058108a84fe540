"""`load_csr` on hand-made hostile requests (tests/crafted.py): every fault a later
reader would trip on is found at load, and raised only as `MalformedInput` or a
`BadCSR` refinement; a CSR it returns never raises when the pipeline reads it."""

from __future__ import annotations

import crafted
import pytest
from cryptography.x509.oid import AttributeOID

from enroll.csr import MAX_RSA_EXPONENT_BITS, load_csr
from enroll.errors import BadCSR, BadPublicKey, CSRSignatureInvalid, MalformedInput

EXPECTED: dict[str, type[Exception]] = {
    "two_san_extensions": MalformedInput, "garbage_san": MalformedInput,
    "garbage_extension_request": MalformedInput, "subject_bad_utf8": MalformedInput,
    "subject_bad_bmp": MalformedInput, "subject_bad_printable": MalformedInput,
    "subject_empty_rdn": MalformedInput,
    "rsa_e1": BadPublicKey, "ec_off_curve": BadPublicKey, "ec_secp192r1": BadPublicKey,
    "ec_unknown_curve": BadPublicKey, "dsa_key": BadPublicKey, "x25519_key": BadPublicKey,
    "unknown_algorithm_key": BadPublicKey,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_csr_raises_its_typed_error(name: str) -> None:
    with pytest.raises((MalformedInput, BadCSR)) as info:
        load_csr(crafted.HOSTILE[name]())
    assert type(info.value) is EXPECTED[name], info.value
    assert info.value.detail


@pytest.mark.parametrize("name", ["ec_brainpool", *crafted.ATTRIBUTE_ONLY])
def test_csr_that_loads_is_fully_decoded(name: str) -> None:
    """What loads (the profile or the door refuses it later) reads without raising."""
    csr = load_csr(crafted.HOSTILE[name]())
    csr.public_key()
    list(csr.extensions)
    csr.subject.rfc4514_string()
    [a.value for a in csr.attributes]
    if name != "ec_brainpool":
        csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD)


def test_stored_vectors_are_the_generators_output() -> None:
    """tests/vectors/core/hostile/ (the fuzzers' seeds) holds one file per generator."""
    stored = {p.name.removesuffix(".csr.der") for p in crafted.HOSTILE_DIR.iterdir()}
    assert stored == set(crafted.HOSTILE)
    for path in crafted.HOSTILE_DIR.iterdir():
        name = path.name.removesuffix(".csr.der")
        if name in EXPECTED:
            with pytest.raises(EXPECTED[name]):
                load_csr(path.read_bytes())


def test_rsa_exponent_over_the_bound_is_refused_before_the_signature() -> None:
    from asn1crypto import core
    from asn1crypto import keys as akeys
    from cryptography.hazmat.primitives.asymmetric import rsa

    n = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n
    e = (1 << (MAX_RSA_EXPONENT_BITS + 8)) + 1
    spki = akeys.PublicKeyInfo({
        "algorithm": {"algorithm": "rsa", "parameters": core.Null()},
        "public_key": akeys.RSAPublicKey({"modulus": n, "public_exponent": e})}).dump()
    with pytest.raises((BadPublicKey, CSRSignatureInvalid)):
        load_csr(crafted.build(spki=spki))


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x00", b"\x30\x80\x00\x00",
                                  b"\x30\x82\xff\xff" + b"\x00" * 10, bytearray(b"\x30\x03")])
def test_truncated_and_empty_input_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedInput):
        load_csr(data)


def test_not_bytes_is_malformed() -> None:
    with pytest.raises(MalformedInput):
        load_csr("a string")  # type: ignore[arg-type]
