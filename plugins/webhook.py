"""Built-in webhook challenge verifier: asks an external service (an MDM such as Intune
or Jamf, or your own) whether a challenge password is valid for a request.

An endpoint opts in with ``webhook_url`` in its settings (SCEP: ``[scep.endpoints.X]``);
the front-end passes ``{"webhook": {"url", "timeout", "token"}}`` in the
`ChallengeContext.settings`. This plugin POSTs JSON::

    {"protocol": "scep", "endpoint": "default", "challenge": "...",
     "transaction_id": "...", "csr": "-----BEGIN CERTIFICATE REQUEST-----..."}

with ``Authorization: Bearer <token>`` when a token is configured, and allows the
request when the answer is HTTP 200 with JSON ``{"allow": true}``. Any other status or
body denies; a timeout or connection error raises `Unavailable` (the client may retry).
Response bodies are read up to `MAX_RESPONSE_BYTES`; redirects are not followed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization

from enroll.errors import Unavailable
from enroll.hookspecs import hookimpl
from enroll.model import ChallengeContext

log = logging.getLogger("enroll.webhook")
MAX_RESPONSE_BYTES = 16 * 1024


def _payload(context: ChallengeContext) -> dict[str, Any]:
    csr_pem = (context.csr.public_bytes(serialization.Encoding.PEM).decode()
               if context.csr is not None else None)
    return {"protocol": context.protocol, "endpoint": context.endpoint,
            "challenge": context.challenge, "transaction_id": context.transaction_id,
            "csr": csr_pem}


def ask(url: str, payload: dict[str, Any], timeout: float, token: str | None) -> bool:
    """POST `payload` to `url`; True only for 200 + ``{"allow": true}``."""
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            with client.stream("POST", url, content=json.dumps(payload).encode(),
                               headers=headers) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        log.warning("challenge webhook %s: answer too large, denying", url)
                        return False
                status = response.status_code
    except httpx.HTTPError as exc:
        log.warning("challenge webhook %s unreachable: %s", url, type(exc).__name__)
        raise Unavailable("the challenge verification service is unavailable") from exc
    if status != 200:
        log.info("challenge webhook %s answered HTTP %d: denied", url, status)
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("allow") is True


@hookimpl
def enroll_verify_challenge(context: ChallengeContext) -> bool | None:
    """Answer for endpoints that configured a webhook; None for the others."""
    settings = context.settings.get("webhook")
    if not isinstance(settings, dict) or not settings.get("url"):
        return None
    token = settings.get("token")
    secret = token.reveal() if token is not None and hasattr(token, "reveal") else token
    return ask(str(settings["url"]), _payload(context), float(settings.get("timeout", 5)),
               secret)
