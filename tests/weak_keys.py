"""Real RSA private keys with the weaknesses `enroll.key_checks` refuses, for tests.

Each but the small-factor one is a working key (it signs CSRs and SCEP pkiMessages):

- `fermat_key`: q is the next prime after p, so n = a² - b² with a = ceil(sqrt(n)) on
  the first round of Fermat's method.
- `small_factor_key`: a public key whose n = 991 * m (a prime below 1000 divides it).
- `exponent_key(3)`: an ordinary 2048-bit key with e = 3.
- `roca_key`: both primes made as the Infineon library made them (Nemec et al., CCS
  2017, §2): p = k * M + (65537 ** a mod M) with M the product of the primes up to 167,
  k and a random. Then n mod r is a power of 65537 mod r for every prime r <= 167, which
  is exactly the fingerprint the published detector tests; the real library used larger
  primorials for larger keys, which contain these primes, so this is the same test.

Primality comes from sympy (a test dependency). The module has a unique top-level name
because tests/ is on sys.path.
"""

from __future__ import annotations

import functools
import math
import secrets

from cryptography.hazmat.primitives.asymmetric import rsa
from sympy import isprime, nextprime, primerange

_ROCA_M = math.prod(primerange(2, 168))


def private_key(p: int, q: int, e: int = 65537) -> rsa.RSAPrivateKey:
    """The RSA private key of primes `p`, `q` and exponent `e` (no validation: some of
    these keys are meant to be bad)."""
    n = p * q
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p, q=q, d=d, dmp1=rsa.rsa_crt_dmp1(d, p), dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q), public_numbers=rsa.RSAPublicNumbers(e, n))
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


@functools.cache
def fermat_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    p = rsa.generate_private_key(65537, bits).private_numbers().p  # a random prime
    q = int(nextprime(p))
    while math.gcd(65537, (p - 1) * (q - 1)) != 1:
        q = int(nextprime(q))
    return private_key(p, q)


def small_factor_key(bits: int = 2048) -> rsa.RSAPublicKey:
    """A public key only: n = 991 * an odd number, `bits` long (no CSR is signed with it)."""
    rest = secrets.randbits(bits - 10) | (1 << (bits - 11)) | (1 << (bits - 12)) | 1
    return rsa.RSAPublicNumbers(65537, 991 * rest).public_key()


@functools.cache
def exponent_key(e: int = 3, bits: int = 2048) -> rsa.RSAPrivateKey:
    """OpenSSL makes keys with e = 3 (and other odd exponents) itself."""
    return rsa.generate_private_key(public_exponent=e, key_size=bits)


def _roca_prime(bits: int) -> int:
    """A prime in [sqrt(2) * 2**(bits-1), 2**bits) (so two make a 2*bits modulus) of the
    Infineon form."""
    low, high = math.isqrt(2 ** (2 * bits - 1)) // _ROCA_M + 1, 2 ** bits // _ROCA_M - 1
    while True:
        k = low + secrets.randbelow(high - low)
        candidate = k * _ROCA_M + pow(65537, secrets.randbelow(_ROCA_M), _ROCA_M)
        if isprime(candidate):
            return int(candidate)


@functools.cache
def roca_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    while True:
        p, q = _roca_prime(bits // 2), _roca_prime(bits // 2)
        if (p * q).bit_length() == bits and math.gcd(65537, (p - 1) * (q - 1)) == 1:
            return private_key(p, q)
