"""The content ciphers and digests an endpoint accepts: ``algorithms`` (RFC 8894 §3.5.2
says GetCACaps lists exactly these), and the badAlg text naming the switch to turn on.

    [scep.endpoints.default]
    algorithms = ["aes128", "aes256", "sha256", "sha512"]          # the default
    algorithms = ["aes128", "aes256", "sha256", "sha512", "des", "sha1"]   # scepclient 2.1

MD5 is not supported at all (no SCEP client needs it), so it has no switch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from enroll.config_values import as_bool, as_str_list
from enroll.errors import ConfigError

log = logging.getLogger("enroll.scep")

# config name: (kind, wire name used by envelope.py / signeddata.py, what it is)
ALGORITHMS: dict[str, tuple[str, str, str]] = {
    "aes128": ("cipher", "aes128_cbc", "AES-128-CBC"),
    "aes256": ("cipher", "aes256_cbc", "AES-256-CBC"),
    "3des": ("cipher", "tripledes_3key", "triple DES (DES-EDE3-CBC)"),
    "des": ("cipher", "des", "single DES"),
    "sha1": ("digest", "sha1", "SHA-1"),
    "sha256": ("digest", "sha256", "SHA-256"),
    "sha512": ("digest", "sha512", "SHA-512"),
}
DEFAULT = ("aes128", "aes256", "sha256", "sha512")
LEGACY = ("3des", "des", "sha1")
REQUIRED = ("aes128", "sha256")
"""RFC 8894 §3.5.2: SCEPStandard (which we always advertise) implies AES and SHA-256."""
_BY_WIRE = {wire: name for name, (_kind, wire, _what) in ALGORITHMS.items()}


def parse(table: Mapping[str, Any], key: str) -> frozenset[str]:
    """The endpoint's ``algorithms`` (config names), from ``algorithms`` or the
    deprecated ``legacy_algorithms`` boolean (true adds every legacy algorithm)."""
    if "legacy_algorithms" in table:
        if "algorithms" in table:
            raise ConfigError(f"{key}.legacy_algorithms",
                              f"remove it: {key}.algorithms says what is on")
        legacy = as_bool(table["legacy_algorithms"], f"{key}.legacy_algorithms")
        implied: tuple[str, ...] = (*DEFAULT, *LEGACY) if legacy else DEFAULT
        log.warning("%s.legacy_algorithms is deprecated: use %s.algorithms = [%s]", key, key,
                    ", ".join(f'"{n}"' for n in implied))
        return frozenset(implied)
    if "algorithms" not in table:
        return frozenset(DEFAULT)
    names = tuple(n.lower() for n in as_str_list(table["algorithms"], f"{key}.algorithms"))
    for name in names:
        if name == "md5":
            raise ConfigError(f"{key}.algorithms", "MD5 is not supported")
        if name not in ALGORITHMS:
            raise ConfigError(f"{key}.algorithms",
                              f"unknown algorithm {name!r}; expected some of "
                              + ", ".join(ALGORITHMS))
    for name in REQUIRED:
        if name not in names:
            raise ConfigError(f"{key}.algorithms",
                              f'"{name}" is required (RFC 8894 SCEPStandard)')
    return frozenset(names)


def wire_names(algorithms: frozenset[str], kind: str) -> tuple[str, ...]:
    """The envelope/signeddata names of the enabled ciphers or digests, in table order."""
    return tuple(wire for name, (k, wire, _what) in ALGORITHMS.items()
                 if k == kind and name in algorithms)


def refusal(wire: str, kind: str, label: str) -> str:
    """The failInfoText of a badAlg refusal: which switch would accept `wire`."""
    name = _BY_WIRE.get(wire)
    if name is None or ALGORITHMS[name][0] != kind:
        noun = "content cipher" if kind == "cipher" else "digest algorithm"
        return f"{noun} {wire[:40]} is not supported"
    return (f"{ALGORITHMS[name][2]} is off on this endpoint: add \"{name}\" to "
            f"scep.endpoints.{label}.algorithms")
