"""Name the acceptable client-certificate CAs in the TLS CertificateRequest.

A server asking for a client certificate may list the CAs it accepts (RFC 5246
§7.4.4 ``certificate_authorities``; the TLS 1.3 extension of that name, RFC 8446
§4.2.4). A device holding several identities (a manufacturer IDevID and an
operational LDevID, say) picks the one to present from that list; with an empty list
it may present the wrong one and be refused. ``load_verify_locations`` only makes
OpenSSL *trust* the bundle: the names it sends come from the SSL_CTX's client CA list,
which Python's `ssl` module does not expose (no ``SSL_CTX_add_client_CA``).

`advertise` calls ``SSL_CTX_add_client_CA`` through ctypes on the OpenSSL that
Python's ``_ssl`` is linked against, for the CA certificates (basicConstraints
``cA``) of the listener's client CA bundle. It reads the ``SSL_CTX *`` out of CPython's
``PySSLContext`` (the first field after the object header) and uses it only after
checking that this pointer really is that context's SSL_CTX (OpenSSL reports the
same options and verify mode Python set). Where any of this is unavailable (another
interpreter, a statically linked OpenSSL without exported symbols, a layout that does
not check out) it logs a warning and changes nothing: the listener then works as
before, with an empty list.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import sys
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = logging.getLogger("enroll.serve")
_VERIFY_MODES = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}


def _library() -> Any | None:
    """A handle whose symbol lookup reaches the libssl/libcrypto `_ssl` uses."""
    import _ssl

    for path in (getattr(_ssl, "__file__", None), None):
        try:
            lib = ctypes.CDLL(path)
            lib.SSL_CTX_add_client_CA  # noqa: B018 - raises AttributeError when absent
            lib.d2i_X509  # noqa: B018
        except (OSError, AttributeError):
            continue
        lib.SSL_CTX_add_client_CA.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.SSL_CTX_add_client_CA.restype = ctypes.c_int
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.d2i_X509.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p),
                                 ctypes.c_long]
        lib.d2i_X509.restype = ctypes.c_void_p
        lib.X509_free.argtypes = [ctypes.c_void_p]
        lib.X509_free.restype = None
        return lib
    return None


def _ssl_ctx(context: ssl.SSLContext, lib: Any) -> int | None:
    """The ``SSL_CTX *`` of `context`, or None unless OpenSSL confirms it is."""
    if sys.implementation.name != "cpython" or not isinstance(context, ssl.SSLContext):
        return None
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer:
        return None
    if int(lib.SSL_CTX_get_options(pointer)) != int(context.options):
        return None
    expected = _VERIFY_MODES.get(context.verify_mode)
    if expected is None or int(lib.SSL_CTX_get_verify_mode(pointer)) & 3 != expected:
        return None
    return int(pointer)


def ca_certificates(certificates: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    """The CAs among `certificates` (a proxy's own client certificate is trusted too,
    but is no CA a client could pick by), one per subject, in order."""
    seen: set[bytes] = set()
    out: list[x509.Certificate] = []
    for cert in certificates:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except (x509.ExtensionNotFound, ValueError):
            is_ca = False
        subject = cert.subject.public_bytes()
        if is_ca and subject not in seen:
            seen.add(subject)
            out.append(cert)
    return out


def advertise(context: ssl.SSLContext, certificates: Iterable[x509.Certificate]) -> int:
    """Add the subjects of the CA `certificates` to `context`'s client CA list; the
    number added (0, with a warning, where it cannot be done)."""
    cas = ca_certificates(certificates)
    if not cas:
        return 0
    lib = _library()
    pointer = _ssl_ctx(context, lib) if lib is not None else None
    if lib is None or pointer is None:
        log.warning("the HTTPS listener cannot name its client CAs in the TLS "
                    "CertificateRequest on this Python/OpenSSL; clients see an empty list")
        return 0
    added = 0
    for cert in cas:
        der = cert.public_bytes(serialization.Encoding.DER)
        buffer = ctypes.c_char_p(der)
        handle = lib.d2i_X509(None, ctypes.byref(buffer), len(der))
        if not handle:
            continue
        try:
            added += 1 if lib.SSL_CTX_add_client_CA(pointer, handle) == 1 else 0
        finally:
            lib.X509_free(handle)
    return added


def advertise_file(context: ssl.SSLContext, pem_bundle: bytes) -> int:
    """`advertise` for a PEM bundle (the listener's ``client-cas.pem``)."""
    try:
        certificates = x509.load_pem_x509_certificates(pem_bundle)
    except ValueError:
        return 0
    return advertise(context, certificates)
