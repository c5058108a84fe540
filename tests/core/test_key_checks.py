"""Weak-key checks (`enroll.key_checks`), each with real keys, and the profile's
``rsa_exponents``. The same rule through the three doors is in
tests/protocols/test_key_rules_doors.py."""

from __future__ import annotations

import copy
import math
import secrets
import time
from typing import Any

import pytest
import weak_keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from enroll import config as config_mod
from enroll import key_checks
from enroll.errors import BadCSR, ConfigError
from enroll.profile_rules import accept
from enroll.testing import make_csr, make_key


def refused(key: Any, exponents: tuple[int, ...] = (65537,)) -> str:
    with pytest.raises(BadCSR) as info:
        key_checks.check_public_key(key, exponents)
    return info.value.detail


def _profile(**entry: Any) -> Any:
    raw = copy.deepcopy(config_mod.default_raw_config())
    raw["data_dir"] = "/nonexistent/enroll-test"
    raw["profiles"] = {"p": {"ca": "issuing", **entry}}
    return config_mod.from_raw(raw).profiles["p"]


@pytest.mark.parametrize("make", [
    lambda: rsa.generate_private_key(65537, 2048), lambda: rsa.generate_private_key(65537, 3072),
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: ec.generate_private_key(ec.SECP521R1()), ed25519.Ed25519PrivateKey.generate])
def test_well_made_keys_pass(make: Any) -> None:
    key_checks.check_public_key(make().public_key())


def test_rsa_size_is_bounded_both_ways() -> None:
    assert refused(make_key("rsa-1024").public_key()) == \
        "RSA key of 1024 bits is too weak (minimum 2048)"
    huge = rsa.RSAPublicNumbers(65537, secrets.randbits(8200) | 1 | 1 << 8199).public_key()
    assert refused(huge) == "RSA key of 8200 bits is too large (maximum 8192)"


def test_exponent_3_is_refused_unless_the_profile_allows_it() -> None:
    key = weak_keys.exponent_key(3).public_key()
    assert refused(key) == "RSA public exponent 3 is not allowed (allowed: 65537)"
    key_checks.check_public_key(key, (65537, 3))
    assert "not allowed" in refused(rsa.generate_private_key(65537, 2048).public_key(), (3,))


def test_a_huge_exponent_is_not_echoed() -> None:
    n = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n
    key = rsa.RSAPublicNumbers(2**300 + 1, n).public_key()
    assert refused(key) == "RSA public exponent a large value is not allowed (allowed: 65537)"


def test_even_modulus_and_small_factors_are_refused() -> None:
    even = rsa.RSAPublicNumbers(65537, (secrets.randbits(2048) | 1 << 2047) & ~1).public_key()
    assert refused(even) == "RSA modulus is even"
    assert refused(weak_keys.small_factor_key()) == "RSA modulus has a small prime factor"
    for prime in (3, 997):
        n = prime * (secrets.randbits(2040) | 1 << 2039 | 1)
        assert key_checks.has_small_factor(n)
    assert not key_checks.has_small_factor(1009 * 1013)  # both just above 1000


def test_fermat_weak_key_is_split_and_refused() -> None:
    key = weak_keys.fermat_key()
    numbers = key.private_numbers()
    found = key_checks.fermat_factor(numbers.public_numbers.n)
    assert found is not None and set(found) == {numbers.p, numbers.q}
    assert refused(key.public_key()) == \
        "RSA modulus factors by Fermat's method (its primes are too close)"


def test_fermat_stops_after_its_rounds() -> None:
    """Primes 2**100 apart are split in round ~0 of a 2048-bit modulus only if close
    enough; a distance past the bound needs more than `FERMAT_ROUNDS` rounds."""
    p = rsa.generate_private_key(65537, 2048).private_numbers().p
    from sympy import nextprime

    near = int(nextprime(p + 2**400))  # (q - p)² / 8√n ≈ 2**(800 - 1027) rounds: round 0
    far = int(nextprime(p + 2**600))  # ≈ 2**(1200 - 1027) rounds: never within 100
    assert key_checks.fermat_factor(p * near) is not None
    assert key_checks.fermat_factor(p * far) is None
    assert key_checks.fermat_factor(p * far, rounds=0) is None


def test_roca_key_is_refused_and_ordinary_keys_are_not_flagged() -> None:
    key = weak_keys.roca_key()
    n = key.public_key().public_numbers().n
    assert key_checks.has_roca_fingerprint(n)
    assert refused(key.public_key()).startswith("RSA key has the ROCA fingerprint")
    # The fingerprint is "n mod r lies in <65537 mod r>" for all 38 test primes: move
    # one residue out of its subgroup (the others kept, by the CRT) and it is gone.
    assert len(key_checks.ROCA_PRIMES) == 38 and key_checks.ROCA_PRIMES[-1] == 167
    r = next(r for r in key_checks.ROCA_PRIMES if pow(65537, (r - 1) // 2, r) == 1)
    outside = next(x for x in range(2, r) if pow(x, (r - 1) // 2, r) != 1)  # a non-residue
    others = math.prod(p for p in key_checks.ROCA_PRIMES if p != r)
    moved = n + others * ((outside - n) * pow(others, -1, r) % r)
    assert moved % r == outside and all(moved % p == n % p for p in key_checks.ROCA_PRIMES
                                        if p != r)
    assert not key_checks.has_roca_fingerprint(moved)
    for _ in range(5):
        ordinary = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n
        assert not key_checks.has_roca_fingerprint(ordinary)


def test_ec_curves_other_than_p256_p384_p521_are_refused() -> None:
    for curve in (ec.SECP256K1(), ec.BrainpoolP256R1()):
        assert refused(ec.generate_private_key(curve).public_key()) == \
            f"EC curve {curve.name} is not allowed (P-256, P-384, P-521)"


def test_an_off_curve_point_never_becomes_a_key_and_is_refused_if_built() -> None:
    good = ec.generate_private_key(ec.SECP256R1()).public_key()
    numbers = good.public_numbers()
    with pytest.raises(ValueError, match="not on the curve"):
        ec.EllipticCurvePublicNumbers(numbers.x, numbers.y + 1, ec.SECP256R1()).public_key()
    # The same point in a SubjectPublicKeyInfo: OpenSSL refuses it on load too.
    der = bytearray(good.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    der[-1] ^= 1
    with pytest.raises(ValueError):
        serialization.load_der_public_key(bytes(der))

    class OffCurve:
        """A key from another backend that does not validate points."""

        curve = ec.SECP256R1()

        def public_numbers(self) -> ec.EllipticCurvePublicNumbers:
            return ec.EllipticCurvePublicNumbers(numbers.x, numbers.y + 1, self.curve)

    ec.EllipticCurvePublicKey.register(OffCurve)
    assert refused(OffCurve()) == "EC public key is not a point on its curve"


def test_checks_are_cheap_on_the_largest_key() -> None:
    """Every test runs on an 8192-bit modulus with no small factor (a random one: making
    a real RSA-8192 key takes OpenSSL seconds); measured ~0.4 ms, bound 50 ms."""
    n = 2
    while key_checks.has_small_factor(n):
        n = secrets.randbits(8192) | 1 << 8191 | 1
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    started = time.perf_counter()
    key_checks.check_public_key(key)
    assert time.perf_counter() - started < 0.05


# -- the profile key ----------------------------------------------------------------------

def test_rsa_exponents_is_parsed_and_checked_at_start_up() -> None:
    assert _profile().rsa_exponents == (65537,)
    assert _profile(rsa_exponents=[65537, 3]).rsa_exponents == (65537, 3)
    assert _profile(rsa_exponents="65537, 17").rsa_exponents == (65537, 17)
    for bad in ([], [4], [1], ["x"], [2**257 + 1], 65537):
        with pytest.raises(ConfigError) as info:
            _profile(rsa_exponents=bad)
        assert info.value.key == "profiles.p.rsa_exponents"


def test_profile_rules_refuse_e3_and_a_profile_may_allow_it() -> None:
    csr = make_csr(weak_keys.exponent_key(3))
    with pytest.raises(BadCSR, match="exponent 3 is not allowed"):
        accept(_profile(), csr)
    assert accept(_profile(rsa_exponents=[65537, 3]), csr).key_type == "rsa-2048"
    with pytest.raises(BadCSR, match="Fermat"):
        accept(_profile(rsa_exponents=[65537, 3]), make_csr(weak_keys.fermat_key()))
