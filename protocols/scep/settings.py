"""The ``[scep]`` configuration section, validated once at start-up.

    [scep.endpoints.default]          # served at <http_url>/scep
    path = "/scep"
    profile = "device"
    ca = "issuing"                    # default: the profile's CA
    challenge_sha256 = "<hex>"        # static challenge, stored hashed
    challenge_file = "/…/scep-challenge"   # optional plaintext (0600) for endpoints.json
    one_time_challenges = true        # accept challenges from `enroll scep challenge new`
    webhook_url = "https://mdm.example/verify"   # ask an MDM (plugins/webhook.py)
    challenge_verifier = "intune"     # other challenges: a plugin's (plugins/intune)
    api_token_sha256 = "<hex>"        # MDMs fetch one-time challenges over HTTPS
    algorithms = ["aes128", "aes256", "sha256", "sha512"]   # add "3des", "des", "sha1"
    getcacert = "auto"                # chain | ra | auto (see EndpointSettings)
    rate_limits = { failures_per_address = "20/15m", challenge_api_failures_per_address = "10/15m" }
    dynamic_challenge = { users = { jamf = "scrypt$…" } }   # NDES mscep_admin page (ndes_admin)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enroll import endpoints
from enroll.config import Config
from enroll.config_values import Secret, as_bool, as_duration, as_int, as_str, as_table, check_keys
from enroll.errors import ConfigError
from enroll.rate_limits import Rate, rates

from . import algorithms, ndes_admin
from .pkimessage import MAX_MESSAGE_BYTES

DEFAULT_PATH = "/scep"
_ENDPOINT_KEYS = {
    "path", "profile", "ca", "next_ca", "challenge", "challenge_sha256", "challenge_file",
    "one_time_challenges", "one_time_ttl", "webhook_url", "webhook_timeout",
    "webhook_token", "api_token_sha256", "algorithms", "legacy_algorithms",
    "signing_time_skew",
    "renewal_grace", "renewal_challenge", "max_message_bytes", "ra_profile", "ra_key_size",
    "ra_overlap",
    "getcacert", "rate_limits", "dynamic_challenge", "challenge_verifier",
}
RATE_LIMITS: dict[str, Rate | None] = {
    # Wrong challenges and messages that do not decrypt into a request, per source
    # address: a throttled address is answered before any RSA decryption.
    "failures_per_address": Rate(20, 15 * 60),
    # Wrong bearer tokens on the one-time-challenge API.
    "challenge_api_failures_per_address": Rate(10, 15 * 60),
    # Wrong Basic passwords on the NDES-compatible challenge page (`ndes_admin`).
    "dynamic_challenge_failures_per_address": Rate(10, 15 * 60),
    "dynamic_challenge_failures_per_user": Rate(20, 3600),
}
_SECTION_KEYS = {"enabled", "endpoints"}


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    label: str
    path: str
    profile: str
    ca: str
    next_ca: str | None
    static_sha256: str | None
    challenge_file: Path | None
    one_time: bool
    one_time_ttl: int
    webhook: Mapping[str, Any] | None
    api_token_sha256: str | None
    algorithms: frozenset[str]
    """Config names of the enabled ciphers and digests (`algorithms.ALGORITHMS`)."""
    signing_time_skew: int
    renewal_grace: int
    renewal_challenge: bool
    """RenewalReq must carry a valid challenge password as well."""
    max_message_bytes: int
    ra_profile: str
    ra_key_size: int
    ra_overlap: int
    """Seconds before the current RA expires that the next is issued and published
    (GetNextCACert); it becomes current half-way (protocols/scep/ra.py)."""
    getcacert: str
    """``chain`` (RA + CA chain), ``ra`` (RA only) or ``auto`` (RA + the chain's RSA
    certificates from the issuing CA up to the first that is not RSA: clients such as
    micromdm's scepclient envelope to every certificate GetCACert returns and fail on an
    EC one; with an EC issuing CA, the RA alone)."""
    rate_limits: Mapping[str, Rate | None]
    dynamic_challenge: ndes_admin.DynamicChallenge | None = None
    """The NDES-compatible page MDMs fetch one-time challenges from (Jamf Pro's
    "Dynamic - Microsoft CA"); None: not served."""
    verifier: str | None = None
    """The plugin verifying challenges that are neither static nor one-time
    (``challenge_verifier``, e.g. ``intune``): `challenges.verify` leaves them to it."""

    @property
    def digests(self) -> tuple[str, ...]:
        return algorithms.wire_names(self.algorithms, "digest")

    @property
    def ciphers(self) -> tuple[str, ...]:
        return algorithms.wire_names(self.algorithms, "cipher")


def _hex_digest(value: Any, key: str) -> str:
    text = as_str(value, key).lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(key, "expected a hex SHA-256 digest (64 characters)")
    return text


def _endpoint(label: str, table: Mapping[str, Any], config: Config) -> EndpointSettings:
    key = f"scep.endpoints.{label}"
    check_keys(table, _ENDPOINT_KEYS | endpoints.CORE_KEYS, key)
    base = endpoints.endpoint_base(
        label, table, section="scep", config=config, default_profile="device",
        default_path=DEFAULT_PATH if label == endpoints.DEFAULT_LABEL
        else f"{DEFAULT_PATH}/{label}")
    next_ca = (endpoints.ca_name(table["next_ca"], f"{key}.next_ca", config)
               if "next_ca" in table else None)
    static = None
    if "challenge_sha256" in table:
        static = _hex_digest(table["challenge_sha256"], f"{key}.challenge_sha256")
    elif "challenge" in table:
        static = sha256_hex(as_str(table["challenge"], f"{key}.challenge"))
    challenge_file = None
    if "challenge_file" in table:
        challenge_file = Path(as_str(table["challenge_file"], f"{key}.challenge_file"))
        if static is None:
            try:
                static = sha256_hex(challenge_file.read_text().strip())
            except OSError as exc:
                raise ConfigError(f"{key}.challenge_file", f"cannot read: {exc.strerror}") \
                    from exc
    webhook = None
    if "webhook_url" in table:
        url = as_str(table["webhook_url"], f"{key}.webhook_url")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{key}.webhook_url", "expected an http(s) URL")
        webhook = {
            "url": url,
            "timeout": as_int(table.get("webhook_timeout", 5), f"{key}.webhook_timeout",
                              minimum=1, maximum=60),
            "token": Secret(as_str(table["webhook_token"], f"{key}.webhook_token"))
            if "webhook_token" in table else None,
        }
    one_time = as_bool(table.get("one_time_challenges", True), f"{key}.one_time_challenges")
    dynamic = None
    if "dynamic_challenge" in table:
        dynamic = ndes_admin.parse(table["dynamic_challenge"], f"{key}.dynamic_challenge",
                                   label)
        if not one_time:
            raise ConfigError(f"{key}.dynamic_challenge", "needs one_time_challenges = "
                                                          "true (it hands out one-time "
                                                          "challenges)")
    ra_profile = endpoints.profile_name(table.get("ra_profile", "device"),
                                        f"{key}.ra_profile", config)
    return EndpointSettings(
        label=base.label, path=base.path, profile=base.profile, ca=base.ca, next_ca=next_ca,
        static_sha256=static, challenge_file=challenge_file,
        one_time=one_time,
        one_time_ttl=as_duration(table.get("one_time_ttl", "1h"), f"{key}.one_time_ttl",
                                 minimum=60, maximum=90 * 86400),
        webhook=webhook,
        api_token_sha256=_hex_digest(table["api_token_sha256"], f"{key}.api_token_sha256")
        if "api_token_sha256" in table else None,
        algorithms=algorithms.parse(table, key),
        signing_time_skew=as_duration(table.get("signing_time_skew", "24h"),
                                      f"{key}.signing_time_skew", minimum=60),
        renewal_grace=as_duration(table.get("renewal_grace", 0), f"{key}.renewal_grace",
                                  minimum=0),
        renewal_challenge=as_bool(table.get("renewal_challenge", False),
                                  f"{key}.renewal_challenge"),
        max_message_bytes=as_int(table.get("max_message_bytes", MAX_MESSAGE_BYTES),
                                 f"{key}.max_message_bytes", minimum=2048,
                                 maximum=1024 * 1024),
        ra_profile=ra_profile,
        ra_key_size=as_int(table.get("ra_key_size", 2048), f"{key}.ra_key_size",
                           minimum=2048, maximum=4096),
        ra_overlap=as_duration(table.get("ra_overlap", "30d"), f"{key}.ra_overlap",
                               minimum=3600),
        getcacert=endpoints.choice(table.get("getcacert", "auto"), f"{key}.getcacert",
                                   ("auto", "chain", "ra")),
        rate_limits=rates(table.get("rate_limits"), f"{key}.rate_limits", RATE_LIMITS),
        dynamic_challenge=dynamic,
        verifier=_verifier(table.get("challenge_verifier"), f"{key}.challenge_verifier"),
    )


def _verifier(raw: Any, key: str) -> str | None:
    """The plugin that verifies the challenges static and one-time ones do not match."""
    if raw is None:
        return None
    name = as_str(raw, key)
    if not name.isidentifier() or len(name) > 64:
        raise ConfigError(key, "expected a plugin's verifier name, e.g. \"intune\"")
    return name


def parse(config: Config) -> tuple[EndpointSettings, ...]:
    """The configured endpoints (parsed once per configuration); with no ``[scep]``
    section, one default endpoint at ``/scep`` that accepts one-time challenges only.
    ``enabled = false`` serves none."""
    return endpoints.cached(config, "scep", _parse)


def _parse(config: Config) -> tuple[EndpointSettings, ...]:
    section = as_table(config.section("scep"), "scep")
    check_keys(section, _SECTION_KEYS, "scep")
    if not as_bool(section.get("enabled", True), "scep.enabled"):
        return ()
    tables = as_table(section.get("endpoints", {endpoints.DEFAULT_LABEL: {}}),
                      "scep.endpoints")
    result = tuple(_endpoint(label, as_table(t, f"scep.endpoints.{label}"), config)
                   for label, t in tables.items())
    endpoints.unique_paths("scep", result)
    _unique_challenge_pages(result)
    return result


def _unique_challenge_pages(result: tuple[EndpointSettings, ...]) -> None:
    """No two challenge pages, and no challenge page and SCEP path, share a path."""
    taken = {e.path: f"the SCEP path of endpoint {e.label!r}" for e in result}
    for e in result:
        if e.dynamic_challenge is None:
            continue
        where = e.dynamic_challenge.path
        if where in taken:
            raise ConfigError(f"scep.endpoints.{e.label}.dynamic_challenge.path",
                              f"{where} is {taken[where]} too")
        taken[where] = f"the challenge page of endpoint {e.label!r}"
