"""Hand the TLS peer certificate to the app through the ASGI TLS extension.

uvicorn does not put the client certificate of an HTTPS connection in the ASGI scope.
`protocol_class()` returns a subclass of uvicorn's HTTP protocol (httptools when
installed, else h11) that, once per connection, reads the peer certificate from the
transport's ``ssl_object`` and adds to every request's scope:

- ``scope["extensions"]["tls"]``: the ASGI TLS extension
  (https://asgi.readthedocs.io/en/latest/specs/tls.html): ``client_cert_chain`` (PEM
  strings, leaf first: the chain OpenSSL verified, so a device certificate from a
  manufacturer intermediate arrives with that intermediate and the anchor; see
  `peer_chain`), ``client_cert_name``,
  ``client_cert_error``, ``server_cert``, ``tls_version`` and ``cipher_suite``;
- ``scope["extensions"]["enroll.transport"]``: ``{"peer": (host, port),
  "tls_unique": bytes | None}``: the address of the socket's peer *before* any
  proxy-header rewriting (so a front-end can tell a trusted proxy from a forged
  ``X-Forwarded-For``), and the RFC 5929 tls-unique channel binding (TLS 1.2 and
  below; None for TLS 1.3, where it is undefined).

A plain-HTTP connection gets ``enroll.transport`` and no ``tls``: that is how
`enroll.asgi.plain_http` tells the plain-HTTP listener from the HTTPS one.

The certificate reached the app only if the TLS layer verified it against the
listener's client CA bundle (``CERT_OPTIONAL``: a client without one still connects);
the app still decides whether it accepts it.
"""

from __future__ import annotations

import _ssl
import asyncio
import ssl
from typing import Any

from enroll.asgi.types import ASGIApp, Receive, Scope, Send

_ENCODING_DER = getattr(_ssl, "ENCODING_DER", 2)
MAX_CHAIN = 8
_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def peer_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """DER of the peer's verified chain, leaf first (leaf to trust anchor).

    Python 3.13 has ``SSLObject.get_verified_chain()`` (DER bytes); 3.10 to 3.12 have
    the same call, private, on the ``_ssl._SSLSocket`` inside (``_sslobj``), returning
    certificate objects. Elsewhere only the leaf is known: ``[leaf]``. The chain is the
    one OpenSSL built and verified against the listener's client CA bundle, never the
    unverified list the client sent."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return []
    getter = getattr(ssl_object, "get_verified_chain", None) or \
        getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    try:
        chain = list(getter() or ()) if getter is not None else []
    except (ssl.SSLError, ValueError, AttributeError):
        chain = []
    out = [c if isinstance(c, bytes) else c.public_bytes(_ENCODING_DER) for c in chain]
    if not out or out[0] != der:  # not what getpeercert saw: trust the leaf alone
        return [der]
    return out[:MAX_CHAIN]


def connection_extensions(transport: asyncio.BaseTransport) -> dict[str, Any]:
    """The scope extensions for one connection (computed once, after the handshake)."""
    peer = transport.get_extra_info("peername")
    peer_addr = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and \
        len(peer) >= 2 else None
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return {"enroll.transport": {"peer": peer_addr, "tls_unique": None}}
    chain = [ssl.DER_cert_to_PEM_cert(der) for der in peer_chain(ssl_object)]
    version = ssl_object.version()
    cipher = ssl_object.cipher()
    try:
        tls_unique = ssl_object.get_channel_binding("tls-unique") \
            if version != "TLSv1.3" else None
    except (ValueError, ssl.SSLError):
        tls_unique = None
    return {
        "tls": {
            "server_cert": None,
            "client_cert_chain": chain,
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": _TLS_VERSIONS.get(version or ""),
            "cipher_suite": None,
            "cipher_name": cipher[0] if cipher else None,
        },
        "enroll.transport": {"peer": peer_addr, "tls_unique": tls_unique},
    }


def _with_extensions(app: ASGIApp, extensions: dict[str, Any]) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("extensions", {}).update(extensions)
        await app(scope, receive, send)

    return wrapped


def protocol_class() -> type[asyncio.Protocol]:
    """uvicorn's default HTTP protocol, extended to fill the TLS extension. Pass it as
    ``uvicorn.Config(http=...)``."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class TLSExtensionProtocol(base):  # type: ignore[misc]
        app: ASGIApp

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            # One closure per connection; `self.app` is what each request runs.
            self.app = _with_extensions(self.app, connection_extensions(transport))

    TLSExtensionProtocol.__name__ = f"TLSExtension{base.__name__}"
    return TLSExtensionProtocol
