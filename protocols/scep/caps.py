"""GetCACaps (RFC 8894 §3.5.2): exactly what an endpoint has enabled."""

from __future__ import annotations

from .settings import EndpointSettings


def capabilities(endpoint: EndpointSettings) -> list[str]:
    """The capability keywords, in the order RFC 8894 §3.5.2 lists them. Single DES has
    no keyword (it is the pre-RFC default); AES and SHA-256 are always on."""
    on = endpoint.algorithms
    caps = ["AES"]
    if "3des" in on:
        caps.append("DES3")
    if endpoint.next_ca is not None:
        caps.append("GetNextCACert")
    caps += ["POSTPKIOperation", "Renewal"]
    if "sha1" in on:
        caps.append("SHA-1")
    caps.append("SHA-256")
    if "sha512" in on:
        caps.append("SHA-512")
    # SCEPStandard implies AES, POSTPKIOperation and SHA-256 (§3.5.2).
    caps.append("SCEPStandard")
    return caps


def render(endpoint: EndpointSettings) -> str:
    return "\n".join(capabilities(endpoint)) + "\n"
