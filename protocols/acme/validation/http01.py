"""http-01 (RFC 8555 §8.3) with httpx: bounded size, time and redirects, and every hop
re-checked against the network filter."""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import urlsplit

import httpx

from ..settings import ValidationSettings
from .network import TIMEOUT, Address, ValidationFailed, addresses

MAX_BODY = 4096
MAX_REDIRECTS = 5
# RFC 8555 §8.3: a redirect to https is followed without checking the certificate.
# Built once: creating an SSL context costs milliseconds of CPU.
_NO_VERIFY = ssl.create_default_context()
_NO_VERIFY.check_hostname = False
_NO_VERIFY.verify_mode = ssl.CERT_NONE


def _url(scheme: str, address: Address, port: int, path: str) -> str:
    host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    return f"{scheme}://{host}:{port}{path}"


async def _fetch(client: httpx.AsyncClient, url: str, host: str) -> httpx.Response:
    async with client.stream("GET", url, headers={"Host": host}) as response:
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                raise ValidationFailed("unauthorized", "http-01 response is too large")
        response._content = body  # noqa: SLF001 - keep the bounded body
        return response


async def validate(name: str, token: str, key_authorization: str,
                   settings: ValidationSettings) -> None:
    """Raise ValidationFailed unless ``http://name/.well-known/acme-challenge/token``
    answers the key authorization."""
    scheme, host, port = "http", name, settings.http01_port
    path = f"/.well-known/acme-challenge/{token}"
    async with httpx.AsyncClient(trust_env=False, verify=_NO_VERIFY, follow_redirects=False,
                                 timeout=TIMEOUT) as client:
        for _ in range(MAX_REDIRECTS + 1):
            targets = await addresses(host, settings)
            try:
                response = await _fetch(client, _url(scheme, targets[0], port, path), host)
            except httpx.HTTPError as exc:
                raise ValidationFailed("connection", f"cannot fetch the http-01 resource "
                                       f"from {host}: {type(exc).__name__}") from None
            if response.is_redirect:
                location = urlsplit(str(response.next_request.url)
                                    if response.next_request else "")
                if location.scheme not in ("http", "https") or not location.hostname:
                    raise ValidationFailed("connection", "redirect to an invalid URL")
                scheme, host = location.scheme, location.hostname
                port = (settings.http01_port if scheme == "http"
                        else settings.tlsalpn01_port)
                path = location.path or "/"
                continue
            if response.status_code != 200:
                raise ValidationFailed("unauthorized", f"http-01 resource answered "
                                       f"{response.status_code}")
            if response.content.strip().decode(errors="replace") != key_authorization:
                raise ValidationFailed("incorrectResponse",
                                       "http-01 resource holds the wrong key authorization")
            return
    raise ValidationFailed("connection", "too many redirects")
