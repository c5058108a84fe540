"""Who is calling the API: an ``Authorization: Bearer`` API token (`admin.tokens`), or,
when ``[admin] client_ca`` is set and no token is given, a TLS client certificate.

A token that is malformed, unknown, wrong, expired or revoked gets the same 401 (with
``WWW-Authenticate: Bearer``): the answer says nothing about which part failed. A
client certificate counts only if the configured admin CA signed it directly, this
engine issued it under that CA (its exact serial is in the inventory), it is not
revoked and is within its validity, and its subject CN (or an email SAN) is listed in
``[admin] client_roles``. The TLS layer asks for certificates from that CA
(`admin.plugin.enroll_tls_client_cas`) and hands the verified chain to the app in the
ASGI TLS extension (`enroll.asgi.tls_client_cert`); we check again here because the
listener's bundle also holds the other doors' CAs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from enroll.client_certificates import load_certificate
from enroll.context import AppContext
from enroll.errors import MalformedInput
from enroll.model import CertificateStatus

from .. import store, tokens
from ..principal import Principal
from ..roles import Role
from ..settings import AdminSettings
from .problems import Problem, unauthenticated

MAX_AUTHORIZATION = 256
MAX_CERT_PEM = 16 * 1024


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Bearer credential, None without an Authorization header; a repeated,
    oversized or non-Bearer header is a 401."""
    values = [v for k, v in headers if k.lower() == b"authorization"]
    if not values:
        return None
    if len(values) > 1 or len(values[0]) > MAX_AUTHORIZATION:
        raise unauthenticated("one Authorization: Bearer header, please", presented=True)
    scheme, _, credential = values[0].decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise unauthenticated("expected Authorization: Bearer <token>", presented=True)
    return credential.strip()


def from_token(ctx: AppContext, presented: str) -> Principal:
    """Blocking: the token's principal (and its last use recorded), or a 401."""
    now = ctx.clock.now()
    with ctx.db.read() as tx:
        token = tokens.authenticate(tx, presented, now)
    if token is None:
        raise unauthenticated("the token is not valid (unknown, expired or revoked)",
                              presented=True)
    with ctx.db.write() as tx:
        store.touch_token(tx, token.id, now)
    return Principal(name=f"token:{token.name}", role=Role(token.role), kind="token")


def client_certificate(scope: Mapping[str, Any]) -> x509.Certificate | None:
    """The TLS client certificate the listener verified, if any (parsed, bounded)."""
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if isinstance(extensions, Mapping) else None
    chain = tls.get("client_cert_chain") if isinstance(tls, Mapping) else None
    if not isinstance(chain, list | tuple) or not chain or not isinstance(chain[0], str):
        return None
    if len(chain[0]) > MAX_CERT_PEM:
        return None
    try:
        return load_certificate(chain[0].encode("utf-8", "surrogateescape"), pem=True)
    except MalformedInput:
        return None


def names_of(cert: x509.Certificate) -> list[str]:
    """The subject CN, then the email SANs: what ``client_roles`` maps."""
    out = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out += [str(e) for e in san.get_values_for_type(x509.RFC822Name)]
    except x509.ExtensionNotFound:
        pass
    return out


def from_certificate(ctx: AppContext, settings: AdminSettings,
                     cert: x509.Certificate) -> Principal:
    """Blocking: the admin certificate's principal, a 401 if it does not authenticate,
    a 403 if it does but no role is configured for it."""
    assert settings.client_ca is not None  # noqa: S101 - the caller checked
    refused = unauthenticated("the client certificate is not an admin certificate",
                              presented=True)
    issuer = ctx.authority.chain(settings.client_ca)[0]
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise refused from None
    now = ctx.clock.now()
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise refused
    record = ctx.authority.certificate(format(cert.serial_number, "x"))
    if record is None or record.ca != settings.client_ca or \
            record.status is not CertificateStatus.VALID or record.certificate != cert:
        raise refused
    for name in names_of(cert):
        role = settings.client_roles.get(name)
        if role is not None:
            return Principal(name=f"cert:{name[:200]}", role=role, kind="cert")
    raise Problem(403, "no role is configured for this client certificate "
                       "([admin] client_roles)")
