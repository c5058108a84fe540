"""Where validation may connect: resolve through the configured resolver, then filter
every address by the allow/deny networks. Loopback, link-local (169.254.169.254 among
them) and the cloud metadata services outside it are denied unless configured; private
ranges are allowed (this is an internal CA)."""

from __future__ import annotations

import asyncio
import ipaddress

import dns.asyncresolver
import dns.exception
import dns.resolver

from ..problems import AcmeProblem
from ..settings import ValidationSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
TIMEOUT = 5.0
METADATA_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "100.100.100.200/32",  # Alibaba Cloud instance metadata (in the shared 100.64/10)
    "168.63.129.16/32",    # Azure WireServer
    "fd00:ec2::254/128",   # AWS instance metadata over IPv6 (a unique-local address)
))
"""Metadata endpoints that are not link-local: a validation fetch there would let a
client read the host's credentials. Reachable only through ``allow_networks``."""


class ValidationFailed(AcmeProblem):
    """A challenge failed; `typ` is the ACME error type (connection, dns, unauthorized…).
    Its `document()` is what the challenge stores as its ``error``."""

    def __init__(self, typ: str, detail: str) -> None:
        super().__init__(typ, detail, 400)


def resolver(settings: ValidationSettings) -> dns.asyncresolver.Resolver:
    if settings.resolver is None:
        res = dns.asyncresolver.Resolver()
    else:
        res = dns.asyncresolver.Resolver(configure=False)
        res.nameservers = [settings.resolver[0]]
        res.port = settings.resolver[1]
    res.lifetime = TIMEOUT
    res.timeout = TIMEOUT / 2
    return res


def permitted(address: Address, settings: ValidationSettings) -> bool:
    """May validation connect to `address`?"""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in n for n in settings.deny_networks):
        return False
    if any(address in n for n in settings.allow_networks):
        return True
    if address.is_loopback:
        return settings.allow_loopback
    if any(address in n for n in METADATA_NETWORKS):
        return False
    return not (address.is_link_local or address.is_multicast or address.is_unspecified
                or address.is_reserved)


async def _lookup(res: dns.asyncresolver.Resolver, name: str, rdtype: str) -> list[Address]:
    try:
        answer = await res.resolve(name, rdtype)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return []
    except dns.exception.DNSException as exc:
        raise ValidationFailed("dns", f"DNS lookup for {name} failed: "
                               f"{type(exc).__name__}") from None
    return [ipaddress.ip_address(r.address) for r in answer]


def _literal(name: str) -> list[Address]:
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        return []


async def addresses(name: str, settings: ValidationSettings) -> list[Address]:
    """The permitted addresses of a DNS name or an IP identifier (RFC 8738)."""
    found = _literal(name)
    if not found:
        res = resolver(settings)
        # A and AAAA in parallel: one round trip of latency instead of two.
        answers = await asyncio.gather(_lookup(res, name, "A"), _lookup(res, name, "AAAA"))
        found = [a for answer in answers for a in answer]
        if not found:
            raise ValidationFailed("dns", f"no A or AAAA record for {name}")
    allowed = [a for a in found if permitted(a, settings)]
    if not allowed:
        raise ValidationFailed("rejectedIdentifier",
                               f"{name} resolves only to networks validation may not reach")
    return allowed
