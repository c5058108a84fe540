"""tls-alpn-01 (RFC 8737): a TLS handshake offering only ``acme-tls/1`` whose
self-signed certificate names the identifier and carries the critical acmeIdentifier
extension with SHA-256 of the key authorization."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import ssl

from cryptography import x509

from enroll.csr import PARSE_ERRORS

from ..settings import ValidationSettings
from .network import TIMEOUT, ValidationFailed, addresses

ACME_TLS_1 = "acme-tls/1"
ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def _sni(name: str) -> str | None:
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return name
    # RFC 8738 §6: the reverse-DNS name is sent as SNI for IP identifiers.
    return ip.reverse_pointer


async def validate(name: str, key_authorization: str, settings: ValidationSettings) -> None:
    targets = await addresses(name, settings)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([ACME_TLS_1])
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            str(targets[0]), settings.tlsalpn01_port, ssl=context,
            server_hostname=_sni(name)), TIMEOUT)
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        raise ValidationFailed("tls", f"TLS connection failed: {type(exc).__name__}") from None
    try:
        sslobj = writer.get_extra_info("ssl_object")
        if sslobj is None or sslobj.selected_alpn_protocol() != ACME_TLS_1:
            raise ValidationFailed("tls", "server did not negotiate acme-tls/1")
        der = sslobj.getpeercert(binary_form=True)
    finally:
        writer.close()
    check_certificate(der, name, key_authorization)


def check_certificate(der: object, name: str, key_authorization: str) -> None:
    """Raise ValidationFailed unless `der` (the peer's certificate as the TLS stack gave
    it: DER bytes, or None) is a certificate that passes RFC 8737 §3 for `name`.
    Whatever the peer sent, nothing but ValidationFailed escapes."""
    if not isinstance(der, bytes) or not der:
        raise ValidationFailed("tls", "the server presented no certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
        san_values = list(sans)
    except x509.ExtensionNotFound:
        raise ValidationFailed("unauthorized", "certificate lacks SAN or acmeIdentifier") from None
    except PARSE_ERRORS as exc:
        raise ValidationFailed("unauthorized", "the certificate does not parse: "
                               f"{type(exc).__name__}") from None
    _check(san_values, ext, name, key_authorization)


def _check(sans: list[x509.GeneralName], ext: x509.Extension[x509.ExtensionType],
           name: str, key_authorization: str) -> None:
    try:
        ip = ipaddress.ip_address(name)
        names_ok = sans == [x509.IPAddress(ip)]
    except ValueError:
        names_ok = sans == [x509.DNSName(name)]
    if not names_ok:
        raise ValidationFailed("unauthorized", "certificate must name exactly the identifier")
    expected = b"\x04\x20" + hashlib.sha256(key_authorization.encode()).digest()
    value = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
    if not ext.critical or not hmac.compare_digest(value, expected):
        raise ValidationFailed("unauthorized", "acmeIdentifier does not match")
