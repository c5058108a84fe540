"""The ``[est]`` configuration section, validated once at start-up.

    [est]
    path = "/.well-known/est"          # RFC 7030 §3.2.2: the well-known prefix
    client_cert_header = "x-ssl-client-cert"   # set by a proxy that proves itself

    [est.proxy]                        # a TLS-terminating proxy forwards client certs
    client_certs = ["/…/nginx-proxy.pem"]      # mTLS: the proxy's own client certificate
    secret_file = "/…/proxy-secret"    # or/and a shared secret the proxy sends …
    secret_header = "x-enroll-proxy-secret"    # … in this header

    [est.endpoints.default]            # label "default" is served at <path>/
    profile = "device"
    ca = "issuing"                     # default: the profile's CA
    auth = ["basic", "client-cert"]    # what simpleenroll/serverkeygen accept
    users = { est = "sha256$<salt>$<hex>" }   # hashed passwords (enroll est hash-password)
    password_file = "/…/est-password"  # optional plaintext (0600) for endpoints.json
    client_cert_cas = ["/…/idevid-ca.pem"]    # extra trust anchors for client certs
    tls_unique = "optional"            # off | optional | required (RFC 7030 §3.5)
    serverkeygen = true
    archive_keys = false               # keep server-generated keys, encrypted
    serverkeygen_keys = { "kek-1" = "/…/kek-1.hex" }   # DecryptKeyIdentifier -> AES key
    reenroll_grace = "0s"              # accept just-expired certs for simplereenroll
    client_cert_scope = "identity"     # a client cert names only itself; or "profile"
    rate_limits = { auth_failures_per_address = "10/15m", auth_failures_per_user = "20/1h" }

Any other label ``x`` is served at ``<path>/x/``.

A forwarded client certificate is read only from a proxy that proves itself on the
request: its connection comes from an address in the top-level ``trusted_proxies``
(the socket's peer, as ``enroll serve`` saw it) and it presents one of
``est.proxy.client_certs`` as its TLS client certificate or the shared secret in
``secret_header``. ``trusted_proxies`` without ``[est.proxy]`` stops start-up.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enroll import endpoints
from enroll.config import Config
from enroll.config_values import (
    Secret,
    as_bool,
    as_duration,
    as_str,
    as_str_list,
    as_table,
    check_keys,
)
from enroll.errors import ConfigError
from enroll.rate_limits import Rate, rates

from .passwords import check_hash_format

DEFAULT_PATH = "/.well-known/est"
DEFAULT_LABEL = "default"
AUTH_METHODS = ("basic", "client-cert")
TLS_UNIQUE_MODES = ("off", "optional", "required")
OPERATIONS = ("cacerts", "csrattrs", "simpleenroll", "simplereenroll", "serverkeygen",
              "fullcmc")
_SECTION_KEYS = {"enabled", "path", "client_cert_header", "endpoints", "proxy"}
_PROXY_KEYS = {"client_certs", "secret_file", "secret_header"}
MIN_SECRET = 32
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_ENDPOINT_KEYS = {
    "profile", "ca", "auth", "users", "password_file", "client_cert_cas", "tls_unique",
    "serverkeygen", "archive_keys", "reenroll_grace", "client_cert_scope", "rate_limits",
    "serverkeygen_keys",
}
AES_KEY_SIZES = (16, 24, 32)
RATE_LIMITS: dict[str, Rate | None] = {
    # Wrong Basic passwords: checked before the password hash runs (a throttled client
    # costs no scrypt), counted on each failure; 429 + Retry-After until the window slides.
    "auth_failures_per_address": Rate(10, 15 * 60),
    "auth_failures_per_user": Rate(20, 3600),
}
CLIENT_CERT_SCOPES = ("identity", "profile")


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    label: str
    path: str
    """Full path prefix of this endpoint, e.g. ``/.well-known/est`` or ``…/est/iot``."""
    profile: str
    ca: str
    auth: tuple[str, ...]
    users: Mapping[str, str]
    """username -> stored password hash (see `passwords`)."""
    password_file: Path | None
    anchors: tuple[x509.Certificate, ...]
    """External CAs whose (directly issued) client certificates authenticate."""
    tls_unique: str
    serverkeygen: bool
    archive_keys: bool
    reenroll_grace: int
    client_cert_scope: str
    """``identity``: a client certificate authenticates only its own identity and names
    (of this engine's certificates: only on an endpoint of the same profile line);
    ``profile``: anything the endpoint's profile allows."""
    rate_limits: Mapping[str, Rate | None]
    key_encryption_keys: Mapping[bytes, Secret] = field(default_factory=dict)
    """``serverkeygen_keys``: DecryptKeyIdentifier (RFC 7030 §4.4.1.1) -> the pre-shared
    AES key (hex in a Secret) a server-generated key is wrapped with."""


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """How a TLS-terminating proxy proves that it sent a forwarded client certificate."""

    networks: tuple[Network, ...]
    """``trusted_proxies``: where the proxy's connections come from."""
    certificates: frozenset[bytes]
    """SHA-256 of the DER of each proxy client certificate (mutual TLS)."""
    chain: tuple[x509.Certificate, ...]
    """Those certificates and their issuers, for the HTTPS listener's client CA list."""
    secret: bytes | None
    secret_header: str

    def is_proxy_certificate(self, cert: x509.Certificate) -> bool:
        der = cert.public_bytes(serialization.Encoding.DER)
        return hashlib.sha256(der).digest() in self.certificates


@dataclass(frozen=True, slots=True)
class EstSettings:
    path: str
    client_cert_header: str
    endpoints: tuple[EndpointSettings, ...]
    proxy: ProxySettings | None


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``trusted_proxies`` entries: addresses or CIDR networks."""
    nets: list[Network] = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError("trusted_proxies", f"not an address or network: {entry!r}") \
                from None
    return tuple(nets)


def _header_name(value: object, key: str, default: str) -> str:
    header = as_str(value if value is not None else default, key).lower()
    if not header or len(header) > 64 or not header.replace("-", "").isalnum():
        raise ConfigError(key, "expected an HTTP header name")
    return header


def _proxy(section: Mapping[str, Any], config: Config,
           cert_header: str) -> ProxySettings | None:
    networks = parse_networks(config.trusted_proxies)
    if "proxy" not in section:
        if networks:
            raise ConfigError("trusted_proxies", (
                "a forwarded client certificate now needs proof that the proxy sent it: "
                "add [est.proxy] with client_certs = [\"<the proxy's client certificate "
                "PEM>\"] (mutual TLS, nginx proxy_ssl_certificate) or secret_file = "
                "\"<file with a shared secret>\" (a header the proxy sets), or remove "
                "trusted_proxies; see docs/est.md \"Behind nginx\""))
        return None
    table = as_table(section["proxy"], "est.proxy")
    check_keys(table, _PROXY_KEYS, "est.proxy")
    if not networks:
        raise ConfigError("est.proxy", "set trusted_proxies too: the addresses the proxy "
                          "connects from")
    header = _header_name(table.get("secret_header"), "est.proxy.secret_header",
                          "x-enroll-proxy-secret")
    if header == cert_header:
        raise ConfigError("est.proxy.secret_header", "must differ from client_cert_header")
    paths = as_str_list(table.get("client_certs", []), "est.proxy.client_certs")
    identities: set[bytes] = set()
    chain: list[x509.Certificate] = []
    for path in paths:
        # The first certificate of each file is the proxy's; any others its issuers.
        certs = _anchors((path,), "est.proxy.client_certs")
        identities.add(hashlib.sha256(certs[0].public_bytes(
            serialization.Encoding.DER)).digest())
        chain.extend(certs)
    secret = None
    if "secret_file" in table:
        where = Path(as_str(table["secret_file"], "est.proxy.secret_file"))
        try:
            secret = where.read_bytes().strip()
        except OSError as exc:
            raise ConfigError("est.proxy.secret_file",
                              f"cannot read {where}: {exc.strerror}") from exc
        if len(secret) < MIN_SECRET:
            raise ConfigError("est.proxy.secret_file", f"the secret must be at least "
                              f"{MIN_SECRET} characters (openssl rand -hex 32)")
    if not identities and secret is None:
        raise ConfigError("est.proxy", "needs client_certs (mutual TLS) or secret_file "
                          "(a shared secret header), or both")
    return ProxySettings(networks=networks, certificates=frozenset(identities),
                         chain=tuple(chain), secret=secret, secret_header=header)


def _anchors(paths: tuple[str, ...], key: str) -> tuple[x509.Certificate, ...]:
    certs: list[x509.Certificate] = []
    for p in paths:
        try:
            certs.extend(x509.load_pem_x509_certificates(Path(p).read_bytes()))
        except OSError as exc:
            raise ConfigError(key, f"cannot read {p}: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError(key, f"{p} holds no PEM certificate") from exc
    return tuple(certs)


def _key_encryption_keys(value: Any, key: str) -> dict[bytes, Secret]:
    """``{ "<identifier>" = "<file>" }``: the identifier is the UTF-8 of the name, or the
    octets after ``hex:``; the file holds the AES-128/192/256 key in hex."""
    out: dict[bytes, Secret] = {}
    for name, path in as_table(value, key).items():
        where = f"{key}.{name}"
        try:
            ident = bytes.fromhex(name[4:]) if name.startswith("hex:") else name.encode()
        except ValueError:
            raise ConfigError(where, "the identifier after hex: is not hex") from None
        if not ident or len(ident) > 64:
            raise ConfigError(where, "an identifier is 1 to 64 octets")
        try:
            text = Path(as_str(path, where)).read_text().strip()
        except OSError as exc:
            raise ConfigError(where, f"cannot read {path}: {exc.strerror}") from exc
        try:
            size = len(bytes.fromhex(text))
        except ValueError:
            raise ConfigError(where, "the file must hold the key in hex") from None
        if size not in AES_KEY_SIZES:
            raise ConfigError(where, "the key must be 16, 24 or 32 octets (AES-128/192/256)")
        out[ident] = Secret(text)
    return out


def _endpoint(label: str, table: Mapping[str, Any], base: str,
              config: Config) -> EndpointSettings:
    key = f"est.endpoints.{label}"
    check_keys(table, _ENDPOINT_KEYS | endpoints.CORE_KEYS, key)
    # RFC 7030 §3.2.2: a label is one path segment, and not an operation's name.
    where = endpoints.endpoint_base(
        label, table, section="est", config=config, default_profile="device",
        default_path=base if label == endpoints.DEFAULT_LABEL else f"{base}/{label}",
        reserved=OPERATIONS)
    auth = endpoints.choices(table.get("auth", list(AUTH_METHODS)), f"{key}.auth",
                             AUTH_METHODS)
    users: dict[str, str] = {}
    for name, value in as_table(table.get("users", {}), f"{key}.users").items():
        if not name or len(name) > 128 or ":" in name:
            raise ConfigError(f"{key}.users", f"invalid user name {name[:32]!r}")
        users[name] = check_hash_format(as_str(value, f"{key}.users.{name}"),
                                        f"{key}.users.{name}")
    password_file = (Path(as_str(table["password_file"], f"{key}.password_file"))
                     if "password_file" in table else None)
    archive = as_bool(table.get("archive_keys", False), f"{key}.archive_keys")
    if archive and config.ca_passphrase is None:
        raise ConfigError(f"{key}.archive_keys",
                          "key archival encrypts with ca_passphrase, which is not set")
    return EndpointSettings(
        label=where.label, path=where.path, profile=where.profile, ca=where.ca, auth=auth,
        users=users, password_file=password_file,
        anchors=_anchors(as_str_list(table.get("client_cert_cas", []),
                                     f"{key}.client_cert_cas"), f"{key}.client_cert_cas"),
        tls_unique=endpoints.choice(table.get("tls_unique", "optional"),
                                    f"{key}.tls_unique", TLS_UNIQUE_MODES),
        serverkeygen=as_bool(table.get("serverkeygen", True), f"{key}.serverkeygen"),
        archive_keys=archive,
        reenroll_grace=as_duration(table.get("reenroll_grace", 0), f"{key}.reenroll_grace",
                                   minimum=0, maximum=90 * 86400),
        client_cert_scope=endpoints.choice(table.get("client_cert_scope", "identity"),
                                           f"{key}.client_cert_scope", CLIENT_CERT_SCOPES),
        rate_limits=rates(table.get("rate_limits"), f"{key}.rate_limits", RATE_LIMITS),
        key_encryption_keys=_key_encryption_keys(table.get("serverkeygen_keys", {}),
                                                 f"{key}.serverkeygen_keys"),
    )


def parse(config: Config) -> EstSettings | None:
    """The EST settings (parsed once per configuration), or None when ``enabled =
    false``. With no ``[est]`` section one default endpoint serves the ``device``
    profile to client certificates only (it has no Basic users until some are
    configured)."""
    return endpoints.cached(config, "est", _parse)


def _parse(config: Config) -> EstSettings | None:
    section = as_table(config.section("est"), "est")
    check_keys(section, _SECTION_KEYS, "est")
    if not as_bool(section.get("enabled", True), "est.enabled"):
        return None
    base = endpoints.path(section.get("path", DEFAULT_PATH), "est.path")
    header = _header_name(section.get("client_cert_header"), "est.client_cert_header",
                          "x-ssl-client-cert")
    proxy = _proxy(section, config, header)
    tables = as_table(section.get("endpoints", {DEFAULT_LABEL: {}}), "est.endpoints")
    parsed = tuple(_endpoint(label, as_table(t, f"est.endpoints.{label}"), base, config)
                   for label, t in tables.items())
    return EstSettings(path=base, client_cert_header=header, endpoints=parsed, proxy=proxy)
