"""Server-side cost of opening a SCEP envelope and parsing its CSR, per failure class.

    python bench/scep_open_timing.py

The classes an attacker altering a captured PKCSReq can reach (bad padding, good padding
with garbage content, a corrupt encrypted key) must cost the same; see docs/scep.md,
"One answer once decryption starts". Prints the best of 7 runs of 200, in µs.
"""

from __future__ import annotations

import timeit

from asn1crypto import cms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from enroll.protocols.scep import envelope
from enroll.protocols.scep.failinfo import Undecryptable

from enroll.csr import load_csr
from enroll.errors import EnrollError
from enroll.testing.scep_client import csr_with_challenge, self_signed

DER = serialization.Encoding.DER


def _altered(data: bytes, ciphertext_xor: dict[int, int] | None = None,
             key_xor: int | None = None) -> bytes:
    info = cms.ContentInfo.load(data)
    ed = info["content"]
    if ciphertext_xor:
        c = bytearray(ed["encrypted_content_info"]["encrypted_content"].native)
        for pos, value in ciphertext_xor.items():
            c[pos] ^= value
        ed["encrypted_content_info"]["encrypted_content"] = bytes(c)
    if key_xor is not None:
        ri = ed["recipient_infos"][0].chosen
        k = bytearray(ri["encrypted_key"].native)
        k[len(k) // 2] ^= key_xor
        ri["encrypted_key"] = bytes(k)
    return bytes(info.dump(force=True))


def main() -> None:
    ra_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ra = self_signed(ra_key, "ra")
    device = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = csr_with_challenge(device, "timing", "challenge").public_bytes(DER)
    pad = 16 - len(csr) % 16
    broken = bytearray(csr)
    broken[-3] ^= 0xFF
    good = envelope.encrypt(csr, [ra])
    cases = {
        "bad padding": _altered(good, {-17: pad}),  # last plaintext byte becomes 0
        "good padding, garbage": _altered(good, {3: 0x5A}),
        "corrupt encrypted key": _altered(good, key_xor=1),
        "CSR signature bad": envelope.encrypt(bytes(broken), [ra]),
        "valid CSR": good,
    }

    def run(data: bytes) -> None:
        sealed = envelope.read(data, ra)
        try:
            load_csr(envelope.open_sealed(sealed, ra_key))
        except (Undecryptable, EnrollError):
            pass

    for name, data in cases.items():
        best = min(timeit.repeat(lambda d=data: run(d), number=200, repeat=7)) / 200  # type: ignore[misc]
        print(f"{name:24s} {best * 1e6:7.1f} µs")


if __name__ == "__main__":
    main()
