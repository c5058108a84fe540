"""GetCACaps (RFC 8894 §3.5.2): exactly what an endpoint has enabled."""

from __future__ import annotations

from .settings import EndpointSettings


def capabilities(endpoint: EndpointSettings, next_ca_cert: bool = False) -> list[str]:
    """The capability keywords, in the order RFC 8894 §3.5.2 lists them. Single DES has
    no keyword (it is the pre-RFC default); AES and SHA-256 are always on.
    GetNextCACert when there is something to answer it with (`next_ca_cert`: a
    configured ``next_ca`` or a next RA generation published ahead)."""
    on = endpoint.algorithms
    caps = ["AES"]
    if "3des" in on:
        caps.append("DES3")
    if next_ca_cert or endpoint.next_ca is not None:
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


def render(endpoint: EndpointSettings, next_ca_cert: bool = False) -> str:
    return "\n".join(capabilities(endpoint, next_ca_cert)) + "\n"
