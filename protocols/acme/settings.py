"""The ``[acme]`` configuration section, validated once at start-up.

    [acme]
    resolver = "127.0.0.1:5353"      # DNS server the validator asks (default: system)
    http01_port = 80                 # port http-01 connects to (tests: the client's)
    tlsalpn01_port = 443             # port tls-alpn-01 connects to
    allow_loopback = false           # let validation reach 127.0.0.0/8 and ::1
    allow_networks = []              # extra networks validation may reach
    deny_networks = []               # extra networks it never reaches
    skip_validation = false          # TEST ONLY (benchmarks): challenges pass unchecked
    validation_concurrency = 64      # validations one worker runs at once

    [acme.endpoints.default]         # label "default" is served at /acme/directory
    profile = "server"               # enroll profile when newOrder names none
    profiles = ["server"]            # offered in meta.profiles (profiles extension)
    ca = "issuing"                   # default: the profile's CA
    challenges = ["http-01", "dns-01", "tls-alpn-01"]   # add "device-attest-01" for
                                     # permanent-identifier orders (Apple devices)
    attestation_roots = { apple = "/etc/enroll/test-root.pem" }  # default: Apple's root
    allow = ["dns:*", "ip:0.0.0.0/0", "ip:::/0"]   # names this endpoint accepts
    eab_required = false
    terms_of_service = ""
    website = ""
    max_pending_authorizations = 300 # per account
    max_concurrent_validations = 10  # per account
    rate_limits = { new_accounts_per_address = "50/3h", new_orders_per_account = "300/3h",
                    failed_validations_per_account_and_name = "5/1h" }

Any other label ``x`` is served at ``/acme/x/directory``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from enroll import endpoints
from enroll.config import Config
from enroll.config_values import as_bool, as_int, as_str, as_str_list, as_table, check_keys
from enroll.errors import ConfigError
from enroll.rate_limits import Rate, rates

from .names import check_patterns

DEFAULT_LABEL = endpoints.DEFAULT_LABEL
# Resource names: a label equal to one would shadow that resource of the default endpoint.
RESERVED_LABELS = frozenset({
    "directory", "new-nonce", "new-account", "new-order", "acct", "order", "authz", "chall",
    "cert", "revoke-cert", "key-change", "renewal-info"})
CHALLENGE_TYPES = ("http-01", "dns-01", "tls-alpn-01")
DEVICE_ATTEST = "device-attest-01"
"""draft-ietf-acme-device-attest: offered only when listed (never by default)."""
_SECTION_KEYS = {"enabled", "resolver", "http01_port", "tlsalpn01_port", "allow_loopback",
                 "allow_networks", "deny_networks", "skip_validation", "endpoints",
                 "validation_concurrency"}
_ENDPOINT_KEYS = {"profile", "profiles", "ca", "challenges", "allow", "eab_required",
                  "terms_of_service", "website", "rate_limits", "max_pending_authorizations",
                  "max_concurrent_validations", "attestation_roots"}
RATE_LIMITS: dict[str, Rate | None] = {
    "new_accounts_per_address": Rate(50, 3 * 3600),
    "new_orders_per_account": Rate(300, 3 * 3600),
    "failed_validations_per_account_and_name": Rate(5, 3600),
}
Network = endpoints.Network


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    label: str
    path: str
    """Path prefix, ``/acme`` for the default endpoint, ``/acme/<label>`` otherwise."""
    profile: str
    profiles: tuple[str, ...]
    ca: str | None
    challenges: tuple[str, ...]
    allow: tuple[str, ...]
    eab_required: bool
    terms_of_service: str
    website: str
    rate_limits: Mapping[str, Rate | None]
    max_pending_authorizations: int
    max_concurrent_validations: int
    attestation_roots: Mapping[str, tuple[x509.Certificate, ...]] = field(
        default_factory=dict)
    """Trust anchors per attestation format (absent: the format's default)."""

    @property
    def device_attest(self) -> bool:
        """Does this endpoint accept ``permanent-identifier`` orders?"""
        return DEVICE_ATTEST in self.challenges


@dataclass(frozen=True, slots=True)
class ValidationSettings:
    resolver: tuple[str, int] | None
    http01_port: int
    tlsalpn01_port: int
    allow_loopback: bool
    allow_networks: tuple[Network, ...]
    deny_networks: tuple[Network, ...]
    skip: bool
    concurrency: int = 64
    """Validations one worker runs at once; more answer rateLimited."""


@dataclass(frozen=True, slots=True)
class AcmeSettings:
    validation: ValidationSettings
    endpoints: tuple[EndpointSettings, ...]


def _resolver(value: Any) -> tuple[str, int] | None:
    if value in (None, ""):
        return None
    text = as_str(value, "acme.resolver")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "53"
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return host, int(port)
    except ValueError:
        raise ConfigError("acme.resolver", "expected an IP address and port, host:port") from None


def _endpoint(label: str, table: Mapping[str, Any], config: Config) -> EndpointSettings:
    key = f"acme.endpoints.{label}"
    check_keys(table, _ENDPOINT_KEYS | endpoints.CORE_KEYS, key)
    base = endpoints.endpoint_base(
        label, table, section="acme", config=config, default_profile="server",
        default_path="/acme" if label == endpoints.DEFAULT_LABEL else f"/acme/{label}",
        reserved=RESERVED_LABELS)
    profile = base.profile
    profiles = as_str_list(table.get("profiles", [profile]), f"{key}.profiles")
    for name in profiles:
        endpoints.profile_name(name, f"{key}.profiles", config)
    # None: each order's CA is its profile's (an order may name another profile).
    ca = endpoints.ca_name(table["ca"], f"{key}.ca", config) if "ca" in table else None
    challenges = endpoints.choices(table.get("challenges", list(CHALLENGE_TYPES)),
                                   f"{key}.challenges", (*CHALLENGE_TYPES, DEVICE_ATTEST))
    allow = as_str_list(table.get("allow", ["dns:*", "ip:0.0.0.0/0", "ip:::/0"]),
                        f"{key}.allow")
    check_patterns(allow, f"{key}.allow")
    return EndpointSettings(
        label=base.label, path=base.path, profile=profile,
        profiles=tuple(dict.fromkeys((profile, *profiles))),
        ca=None if ca is None else str(ca), challenges=challenges, allow=allow,
        eab_required=as_bool(table.get("eab_required", False), f"{key}.eab_required"),
        terms_of_service=as_str(table.get("terms_of_service", ""), f"{key}.terms_of_service"),
        website=as_str(table.get("website", ""), f"{key}.website"),
        rate_limits=rates(table.get("rate_limits"), f"{key}.rate_limits", RATE_LIMITS),
        max_pending_authorizations=as_int(table.get("max_pending_authorizations", 300),
                                          f"{key}.max_pending_authorizations", minimum=1),
        max_concurrent_validations=as_int(table.get("max_concurrent_validations", 10),
                                          f"{key}.max_concurrent_validations", minimum=1),
        attestation_roots=_attestation_roots(table.get("attestation_roots", {}),
                                             f"{key}.attestation_roots"),
    )


def _attestation_roots(value: Any, key: str) -> dict[str, tuple[x509.Certificate, ...]]:
    """``{ apple = "root.pem" }``: each format's anchors, read once at start-up."""
    out: dict[str, tuple[x509.Certificate, ...]] = {}
    for fmt, path in as_table(value, key).items():
        where = f"{key}.{fmt}"
        try:
            certs = x509.load_pem_x509_certificates(Path(as_str(path, where)).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(where, f"cannot read PEM certificates: {exc}") from None
        out[str(fmt)] = tuple(certs)
    return out


def parse(config: Config) -> AcmeSettings | None:
    """The ACME settings (parsed once per configuration), or None when ``enabled =
    false``."""
    return endpoints.cached(config, "acme", _parse)


def _parse(config: Config) -> AcmeSettings | None:
    section = as_table(config.section("acme"), "acme")
    check_keys(section, _SECTION_KEYS, "acme")
    if not as_bool(section.get("enabled", True), "acme.enabled"):
        return None
    validation = ValidationSettings(
        resolver=_resolver(section.get("resolver")),
        http01_port=as_int(section.get("http01_port", 80), "acme.http01_port",
                           minimum=1, maximum=65535),
        tlsalpn01_port=as_int(section.get("tlsalpn01_port", 443), "acme.tlsalpn01_port",
                              minimum=1, maximum=65535),
        allow_loopback=as_bool(section.get("allow_loopback", False), "acme.allow_loopback"),
        allow_networks=endpoints.networks(section.get("allow_networks", []),
                                          "acme.allow_networks"),
        deny_networks=endpoints.networks(section.get("deny_networks", []),
                                         "acme.deny_networks"),
        skip=as_bool(section.get("skip_validation", False), "acme.skip_validation"),
        concurrency=as_int(section.get("validation_concurrency", 64),
                           "acme.validation_concurrency", minimum=1, maximum=4096),
    )
    tables = as_table(section.get("endpoints", {DEFAULT_LABEL: {}}), "acme.endpoints")
    parsed = tuple(_endpoint(label, as_table(t, f"acme.endpoints.{label}"), config)
                   for label, t in tables.items())
    return AcmeSettings(validation, parsed)
