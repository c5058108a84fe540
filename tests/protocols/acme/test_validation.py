"""The validation authority on loopback: network filtering, redirects, size bounds,
dns-01 and tls-alpn-01 against real servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from enroll.protocols.acme.settings import ValidationSettings
from enroll.protocols.acme.validation import ValidationFailed, network, run
from enroll.protocols.acme.validation.tlsalpn01 import ACME_IDENTIFIER
from harness import alpn_server_context


def settings(dns: Any, port: int = 80, *, loopback: bool = True,
             deny: tuple[str, ...] = ()) -> ValidationSettings:
    return ValidationSettings(("127.0.0.1", dns.port), port, port, loopback, (),
                              tuple(ipaddress.ip_network(n) for n in deny), False)


@pytest.mark.parametrize(("address", "loopback", "expected"), [
    ("127.0.0.1", False, False), ("127.0.0.1", True, True), ("::1", False, False),
    ("169.254.169.254", True, False), ("fe80::1", True, False), ("10.1.2.3", False, True),
    ("192.168.1.1", False, True), ("0.0.0.0", True, False),  # noqa: S104 - a target, not a bind
    ("224.0.0.1", True, False),
    ("::ffff:127.0.0.1", False, False),
    # cloud metadata services outside link-local
    ("100.100.100.200", True, False), ("fd00:ec2::254", True, False),
    ("168.63.129.16", True, False), ("100.100.100.201", False, True), ("fd00::1", False, True),
])
def test_network_filter(address: str, loopback: bool, expected: bool) -> None:
    s = ValidationSettings(None, 80, 443, loopback, (), (), False)
    assert network.permitted(ipaddress.ip_address(address), s) is expected


def test_deny_networks_win() -> None:
    s = ValidationSettings(None, 80, 443, True, (ipaddress.ip_network("10.0.0.0/8"),),
                           (ipaddress.ip_network("10.9.0.0/16"),), False)
    assert network.permitted(ipaddress.ip_address("10.1.0.1"), s)
    assert not network.permitted(ipaddress.ip_address("10.9.0.1"), s)


def test_a_metadata_address_is_reachable_only_when_allowed_explicitly() -> None:
    s = ValidationSettings(None, 80, 443, False,
                           (ipaddress.ip_network("100.100.100.200/32"),), (), False)
    assert network.permitted(ipaddress.ip_address("100.100.100.200"), s)
    assert not network.permitted(ipaddress.ip_address("fd00:ec2::254"), s)


async def _http_server(answer: Callable[[str], bytes]) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(answer(line.decode().split(" ")[1]))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_redirect_into_a_denied_network_fails(local_dns: Any) -> None:
    server = await _http_server(lambda path: b"HTTP/1.1 302 Found\r\nLocation: "
                                b"http://169.254.169.254/latest\r\nContent-Length: 0\r\n\r\n")
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(ValidationFailed) as info:
        await run("http-01", "r.test.example", "tok", "tok.x", settings(local_dns, port))
    assert info.value.typ == "rejectedIdentifier"
    server.close()


async def test_oversized_answer_fails(local_dns: Any) -> None:
    body = b"x" * 10000
    server = await _http_server(lambda path: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(body), body))
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(ValidationFailed) as info:
        await run("http-01", "big.test.example", "tok", "tok.x", settings(local_dns, port))
    assert "too large" in info.value.detail
    server.close()


async def test_loopback_denied_without_the_switch(local_dns: Any) -> None:
    with pytest.raises(ValidationFailed) as info:
        await run("http-01", "l.test.example", "t", "t.x", settings(local_dns, loopback=False))
    assert info.value.typ == "rejectedIdentifier"


@pytest.mark.parametrize("address", ["100.100.100.200", "fd00:ec2::254"])
async def test_an_ip_identifier_on_a_metadata_service_is_never_fetched(
        local_dns: Any, address: str) -> None:
    """Refused before any connection is made (nothing leaves loopback)."""
    with pytest.raises(ValidationFailed) as info:
        await run("http-01", address, "t", "t.x", settings(local_dns))
    assert info.value.typ == "rejectedIdentifier"


async def test_dns01_reads_txt_through_the_configured_resolver(local_dns: Any) -> None:
    import base64

    value = base64.urlsafe_b64encode(hashlib.sha256(b"t.k").digest()).rstrip(b"=").decode()
    local_dns.txt["_acme-challenge.d.test.example"] = ["unrelated", value]
    await run("dns-01", "*.d.test.example", "t", "t.k", settings(local_dns))
    with pytest.raises(ValidationFailed) as info:
        await run("dns-01", "d.test.example", "t", "other.k", settings(local_dns))
    assert info.value.typ == "incorrectResponse"
    with pytest.raises(ValidationFailed) as info:
        await run("dns-01", "none.test.example", "t", "t.k", settings(local_dns))
    assert info.value.typ == "dns"


def _alpn_cert(tmp: Path, name: str, key_authorization: str,
               critical: bool = True) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(key_authorization.encode()).digest()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + digest),
                           critical=critical)
            .sign(key, hashes.SHA256()))
    return alpn_server_context(tmp, cert, key)


async def _tls_server(ctx: ssl.SSLContext) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)


async def test_tls_alpn01(local_dns: Any, tmp_path: Path) -> None:
    good = await _tls_server(_alpn_cert(tmp_path, "a.test.example", "t.k"))
    port = good.sockets[0].getsockname()[1]
    await run("tls-alpn-01", "a.test.example", "t", "t.k", settings(local_dns, port))
    with pytest.raises(ValidationFailed):
        await run("tls-alpn-01", "a.test.example", "t", "wrong.k", settings(local_dns, port))
    with pytest.raises(ValidationFailed):
        await run("tls-alpn-01", "b.test.example", "t", "t.k", settings(local_dns, port))
    good.close()
    lax = await _tls_server(_alpn_cert(tmp_path, "a.test.example", "t.k", critical=False))
    with pytest.raises(ValidationFailed):
        await run("tls-alpn-01", "a.test.example", "t", "t.k",
                  settings(local_dns, lax.sockets[0].getsockname()[1]))
    lax.close()
