"""GetCACaps (RFC 8894 §3.5.2): exactly what an endpoint has enabled."""

from __future__ import annotations

from .settings import EndpointSettings


def capabilities(endpoint: EndpointSettings) -> list[str]:
    """The capability keywords, in the order RFC 8894 §3.5.2 lists them."""
    caps = ["AES"]
    if endpoint.legacy:
        caps.append("DES3")
    if endpoint.next_ca is not None:
        caps.append("GetNextCACert")
    caps += ["POSTPKIOperation", "Renewal"]
    if endpoint.legacy:
        caps.append("SHA-1")
    # SCEPStandard implies AES, POSTPKIOperation and SHA-256 (§3.5.2).
    caps += ["SHA-256", "SHA-512", "SCEPStandard"]
    return caps


def render(endpoint: EndpointSettings) -> str:
    return "\n".join(capabilities(endpoint)) + "\n"
