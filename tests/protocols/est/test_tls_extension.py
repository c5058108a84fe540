"""enroll/asgi/tls_client_cert.py on a real uvicorn HTTPS server: the peer certificate
reaches the ASGI scope, and the socket peer survives a forged X-Forwarded-For."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from enroll.asgi.tls_client_cert import protocol_class
from enroll.testing import make_key

PEM = serialization.Encoding.PEM


def _cert(cn: str, key: Any, issuer: tuple[x509.Name, Any] | None = None,
          ca: bool = False, dns: str | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, issuer_key = issuer or (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


async def echo_scope(scope: Any, receive: Any, send: Any) -> None:
    ext = scope.get("extensions", {})
    body = json.dumps({"tls": ext.get("tls"), "transport": {
        "peer": ext.get("enroll.transport", {}).get("peer"),
        "tls_unique": bool(ext.get("enroll.transport", {}).get("tls_unique"))},
        "client": scope.get("client")}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ca_key = make_key()
    ca = _cert("test CA", ca_key, ca=True)
    server_key = make_key()
    server = _cert("localhost", server_key, (ca.subject, ca_key), dns="localhost")
    client_key = make_key()
    client = _cert("client-1", client_key, (ca.subject, ca_key))
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem",
             "key": tmp_path / "server.key", "ccert": tmp_path / "client.pem",
             "ckey": tmp_path / "client.key"}
    files["ca"].write_bytes(ca.public_bytes(PEM))
    files["cert"].write_bytes(server.public_bytes(PEM))
    files["ccert"].write_bytes(client.public_bytes(PEM))
    for path, key in (("key", server_key), ("ckey", client_key)):
        files[path].write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(echo_scope, lifespan="off", log_config=None, access_log=False,
                            http=protocol_class(), ssl_certfile=str(files["cert"]),
                            ssl_keyfile=str(files["key"]), ssl_ca_certs=str(files["ca"]),
                            ssl_cert_reqs=ssl.CERT_OPTIONAL)
    server_obj = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server_obj.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server_obj.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield {"url": f"https://localhost:{port}/", "client": client, **files}
    server_obj.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _get(server: dict[str, Any], cert: bool, tls12: bool = False,
         headers: dict[str, str] | None = None) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(server["ca"]))
    if cert:
        context.load_cert_chain(str(server["ccert"]), str(server["ckey"]))
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    r = httpx.get(server["url"], verify=context, trust_env=False, headers=headers or {})
    assert r.status_code == 200
    result: dict[str, Any] = r.json()
    return result


def test_client_certificate_reaches_the_scope(tls_server: dict[str, Any]) -> None:
    seen = _get(tls_server, cert=True)
    # The verified chain, leaf first, up to the CA the listener trusts.
    pem, anchor = seen["tls"]["client_cert_chain"]
    assert x509.load_pem_x509_certificate(pem.encode()) == tls_server["client"]
    assert x509.load_pem_x509_certificate(anchor.encode()) == \
        x509.load_pem_x509_certificate(tls_server["ca"].read_bytes())
    assert seen["tls"]["tls_version"] == 0x0304
    assert seen["transport"]["peer"][0] == "127.0.0.1"
    assert seen["transport"]["tls_unique"] is False  # TLS 1.3 has no tls-unique


def test_no_client_certificate_gives_an_empty_chain(tls_server: dict[str, Any]) -> None:
    seen = _get(tls_server, cert=False)
    assert seen["tls"]["client_cert_chain"] == []


def test_tls12_connection_carries_tls_unique(tls_server: dict[str, Any]) -> None:
    seen = _get(tls_server, cert=True, tls12=True)
    assert seen["tls"]["tls_version"] == 0x0303
    assert seen["transport"]["tls_unique"] is True


def test_socket_peer_survives_a_forged_forwarded_for(tls_server: dict[str, Any]) -> None:
    seen = _get(tls_server, cert=False, headers={"x-forwarded-for": "127.0.0.2"})
    # uvicorn's proxy-header middleware trusts 127.0.0.1 by default and rewrites
    # `client`; the transport peer is what the socket says.
    assert seen["client"][0] == "127.0.0.2"
    assert seen["transport"]["peer"][0] == "127.0.0.1"
