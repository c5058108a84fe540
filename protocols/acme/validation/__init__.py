"""The validation authority: one module per challenge type, and the network filter."""

from __future__ import annotations

import asyncio

from ..settings import ValidationSettings
from . import dns01, http01, tlsalpn01
from .network import ValidationFailed

__all__ = ["ValidationFailed", "run"]

TOTAL_SECONDS = 20.0
"""Upper bound on one validation, redirects and slow-drip servers included."""


async def run(challenge_type: str, name: str, token: str, key_authorization: str,
              settings: ValidationSettings) -> None:
    """Perform one challenge for real; raise ValidationFailed when it does not pass."""
    try:
        await asyncio.wait_for(_run(challenge_type, name, token, key_authorization, settings),
                               TOTAL_SECONDS)
    except TimeoutError:
        raise ValidationFailed("connection", "validation timed out") from None


async def _run(challenge_type: str, name: str, token: str, key_authorization: str,
               settings: ValidationSettings) -> None:
    if challenge_type == "http-01":
        await http01.validate(name, token, key_authorization, settings)
    elif challenge_type == "dns-01":
        await dns01.validate(name, key_authorization, settings)
    elif challenge_type == "tls-alpn-01":
        await tlsalpn01.validate(name, key_authorization, settings)
    else:
        raise ValidationFailed("malformed", f"unknown challenge type {challenge_type}")
