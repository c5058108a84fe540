"""Who is asking: HTTP Basic users and TLS client certificates (RFC 7030 §3.2.3, §3.3.2).

The client certificate comes from one of two places:

1. the TLS connection itself (``enroll serve``'s HTTPS listener puts it in the ASGI TLS
   extension, ``scope["extensions"]["tls"]["client_cert_chain"]``);
2. a header set by a TLS-terminating reverse proxy (nginx ``$ssl_client_escaped_cert``),
   honoured only from a proxy that proves itself on this request (`read_transport`):
   the socket peer ``enroll serve`` saw (``scope["extensions"]["enroll.transport"]``,
   never the rewritable ``scope["client"]``) is in ``trusted_proxies`` AND the
   connection's TLS client certificate is one of ``[est.proxy] client_certs`` or the
   request carries the shared secret (compared in constant time). Embedded under
   another ASGI server there is no socket peer to check: only the secret proves the
   proxy. From anyone else the header is ignored; a repeated certificate or secret
   header is refused (400), never first- or last-wins.

A certificate authenticates only if this engine issued it under the endpoint's CA (exact
bytes in the inventory), it is not revoked and is within its validity, or if one of the
endpoint's external anchors (``client_cert_cas``) signed it, directly or through CA
certificates of the chain the TLS layer verified (a manufacturer intermediate), and it
is within its validity.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from enroll.asgi.peer import peer_address
from enroll.client_certificates import load_certificate
from enroll.clock import Clock
from enroll.errors import MalformedInput, Unauthorized
from enroll.model import CertificateRecord, CertificateStatus, Requester

from . import passwords, store
from .settings import EndpointSettings, Network, ProxySettings

MAX_AUTH_HEADER = 2048
MAX_CERT_HEADER = 16 * 1024
MAX_CERT_PEM = 64 * 1024
MAX_CHAIN = 8
USER_CACHE_SECONDS = 30.0
log = logging.getLogger("enroll.est")


@dataclass(frozen=True, slots=True)
class Transport:
    """What the connection tells us, before any credential is checked."""

    secure: bool
    """HTTPS to us, or (embedded) a proxy that proved itself and terminated TLS."""
    client_cert: x509.Certificate | None
    tls_unique: bytes | None
    source: str | None = None
    """The socket peer's address: what per-address rate limits count against."""
    client_chain: tuple[x509.Certificate, ...] = ()
    """The certificates above `client_cert` in the chain the TLS layer verified (a
    manufacturer intermediate, the anchor); empty from a proxy header."""


@dataclass(frozen=True, slots=True)
class CertIdentity:
    certificate: x509.Certificate
    record: CertificateRecord | None
    """The inventory record when this engine issued the certificate."""

    @property
    def requester(self) -> Requester:
        if self.record is not None:
            return Requester(f"cert:{self.record.serial_hex}", "client-cert")
        issuer = hashlib.sha256(self.certificate.issuer.public_bytes()).hexdigest()[:16]
        return Requester(f"cert:{issuer}/{self.certificate.serial_number:x}", "client-cert")


def socket_peer(scope: Mapping[str, Any]) -> str | None:
    """The real peer address from ``enroll serve``'s transport extension (immune to
    proxy-header rewriting); None without it: ``scope["client"]`` is not evidence."""
    transport = _mapping(_mapping(scope.get("extensions")).get("enroll.transport"))
    peer = transport.get("peer")
    return str(peer[0]) if isinstance(peer, list | tuple) and peer else None


def _is_trusted(peer: str | None, proxies: tuple[Network, ...]) -> bool:
    if peer is None or not proxies:
        return False
    try:
        addr = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in proxies)


def _usable(pem: object) -> x509.Certificate | None:
    """A client certificate (PEM) with every field authentication reads already decoded
    (`enroll.client_certificates`), or None: a garbage issuer, extension or key would
    otherwise raise later, inside the credential check. No certificate means 401."""
    if not isinstance(pem, str | bytes) or not pem or len(pem) > MAX_CERT_PEM:
        return None
    data = pem.encode("utf-8", "surrogateescape") if isinstance(pem, str) else pem
    try:
        return load_certificate(data, pem=True)
    except MalformedInput:
        return None


def _cert_from_header(value: str) -> x509.Certificate | None:
    if not value or len(value) > MAX_CERT_HEADER:
        return None
    pem = urllib.parse.unquote(value)
    if "-----BEGIN" not in pem:
        return None
    return _usable(pem)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def header_values(scope: Mapping[str, Any], name: str) -> list[bytes]:
    """Every value of header `name` (lower-case) in the raw ASGI headers."""
    wanted = name.encode("latin-1")
    raw = scope.get("headers") or ()
    return [bytes(v) for k, v in raw if bytes(k).lower() == wanted]


def _single(scope: Mapping[str, Any], name: str) -> bytes | None:
    values = header_values(scope, name)
    if len(values) > 1:
        raise MalformedInput(f"the {name} header is repeated")
    return values[0] if values else None


def _proxy_proven(scope: Mapping[str, Any], proxy: ProxySettings | None,
                  leaf: x509.Certificate | None, listener: bool) -> bool:
    """Did a configured proxy send this request, proven on the request itself?"""
    if proxy is None:
        return False
    secret = _single(scope, proxy.secret_header)
    if listener and not _is_trusted(socket_peer(scope), proxy.networks):
        return False
    if listener and leaf is not None and proxy.is_proxy_certificate(leaf):
        return True
    if secret is None or proxy.secret is None:
        return False
    if hmac.compare_digest(secret, proxy.secret):
        return True
    log.warning("est: the %s header from %s does not match est.proxy.secret_file",
                proxy.secret_header, socket_peer(scope) or "an embedding server")
    return False


def read_transport(scope: Mapping[str, Any], proxy: ProxySettings | None,
                   header_name: str) -> Transport:
    """The client certificate and channel binding of this request, if any. Raises
    `MalformedInput` for a repeated certificate or proxy-secret header."""
    extensions = _mapping(scope.get("extensions"))
    tls = _mapping(extensions.get("tls"))
    chain = tls.get("client_cert_chain") or []
    transport_ext = _mapping(extensions.get("enroll.transport"))
    listener = bool(transport_ext)
    forwarded = _single(scope, header_name)
    leaf: x509.Certificate | None = None
    above: tuple[x509.Certificate, ...] = ()
    if isinstance(chain, list | tuple) and chain:
        leaf = _usable(chain[0])
        parsed = [_usable(pem) for pem in chain[1:MAX_CHAIN]]
        above = tuple(c for c in parsed if c is not None)
    if _proxy_proven(scope, proxy, leaf, listener):
        # The TLS connection (certificate, tls-unique) is the proxy's, not the client's.
        cert = _cert_from_header(forwarded.decode("latin-1")) if forwarded else None
        return Transport(secure=True, client_cert=cert, tls_unique=None,
                         source=peer_address(scope))
    if listener:  # enroll serve: trust the socket, not a rewritten scheme
        secure = bool(tls)
    else:
        secure = scope.get("scheme") == "https" or bool(tls)
    return Transport(secure=secure, client_cert=leaf,
                     tls_unique=transport_ext.get("tls_unique"), source=peer_address(scope),
                     client_chain=above if leaf is not None else ())


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header, else None."""
    if not header or len(header) > MAX_AUTH_HEADER or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user, password


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if issuer.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


class CertificateLookup(Protocol):
    """The one core call authentication needs (`enroll.authority.Authority.lookup`)."""

    def lookup(self, cert: x509.Certificate) -> CertificateRecord | None: ...


class Authenticator:
    """Checks the credentials of one endpoint. Thread-safe; call from a worker thread
    (it may read the database and run a slow KDF)."""

    def __init__(self, endpoint: EndpointSettings, authority: CertificateLookup, db: Any,
                 clock: Clock) -> None:
        self.endpoint = endpoint
        self._authority = authority
        self._db = db
        self._clock = clock
        self._verified = passwords.VerifiedCache()
        self._db_users: dict[str, tuple[float, str | None]] = {}

    def _stored_hash(self, user: str) -> str | None:
        configured = self.endpoint.users.get(user)
        if configured is not None:
            return configured
        cached = self._db_users.get(user)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        with self._db.read() as tx:
            found = store.get_user_hash(tx, self.endpoint.label, user)
        if len(self._db_users) > 10_000:
            self._db_users.clear()
        self._db_users[user] = (now + USER_CACHE_SECONDS, found)
        return found

    def basic(self, user: str, password: str) -> Requester:
        """Raises `Unauthorized` unless the user exists here and the password matches."""
        if "basic" not in self.endpoint.auth:
            raise Unauthorized("Basic authentication is not enabled on this endpoint")
        stored = self._stored_hash(user) if len(user) <= 128 else None
        if stored is None:
            # Same cost either way is not needed for 256-bit secrets; for scrypt users a
            # missing name answers faster, which reveals only that the name is unknown.
            raise Unauthorized("unknown user or wrong password")
        if not self._verified.check(user, stored, password):
            raise Unauthorized("unknown user or wrong password")
        return Requester(f"est-user:{self.endpoint.label}:{user}", "basic")

    def certificate(self, cert: x509.Certificate, *, grace: int = 0,
                    chain: tuple[x509.Certificate, ...] = ()) -> CertIdentity:
        """Raises `Unauthorized` unless `cert` is one this endpoint accepts. `chain`:
        the intermediates the TLS layer verified above it (`Transport.client_chain`),
        through which a certificate may reach one of the endpoint's anchors."""
        now = self._clock.now()
        record = self._authority.lookup(cert)
        if record is not None:
            if record.ca != self.endpoint.ca:
                raise Unauthorized("client certificate is from a CA this endpoint does "
                                   "not trust")
            if record.status is not CertificateStatus.VALID:
                raise Unauthorized("client certificate is revoked")
            self._check_time(cert, now, grace)
            return CertIdentity(cert, record)
        if self._anchored(cert, chain, now):
            self._check_time(cert, now, 0)
            return CertIdentity(cert, None)
        raise Unauthorized("client certificate is not from a CA this endpoint trusts")

    def _anchored(self, cert: x509.Certificate, chain: tuple[x509.Certificate, ...],
                  now: dt.datetime) -> bool:
        """Does `cert` reach one of the endpoint's anchors, directly or through CA
        certificates of `chain` (each a CA, valid now, signing the one below)? The TLS
        layer already ran full path validation against the listener's bundle, which
        trusts every endpoint's anchors; this decides which endpoint's anchor the
        path ends at, and re-checks each link."""
        current, used = cert, 0
        while True:
            if any(_signed_by(current, anchor) for anchor in self.endpoint.anchors):
                return True
            if used >= len(chain):
                return False
            issuer = next((c for c in chain if _is_ca(c) and _signed_by(current, c)), None)
            if issuer is None or issuer == current:
                return False
            if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
                raise Unauthorized("a CA certificate in the client's chain is not within "
                                   "its validity")
            current, used = issuer, used + 1

    @staticmethod
    def _check_time(cert: x509.Certificate, now: dt.datetime, grace: int) -> None:
        if cert.not_valid_before_utc > now:
            raise Unauthorized("client certificate is not yet valid")
        if cert.not_valid_after_utc + dt.timedelta(seconds=grace) < now:
            raise Unauthorized("client certificate has expired")
