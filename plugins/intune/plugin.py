"""Built-in Intune verifier: enroll as a third-party CA behind Intune's SCEP profiles.

For a SCEP endpoint with ``challenge_verifier = "intune"`` and an
``[intune.endpoints.<label>]`` table (settings.py), Microsoft's documented flow:

- ``enroll_verify_challenge``: the CSR (with Intune's challenge in it) goes to
  ``validateRequest``. ``Success`` accepts; any other code refuses (the SCEP answer is a
  FAILURE badRequest) and Intune gets a failure notification with that code, so the
  device's status in the Intune console says why. Intune unreachable, slow or answering
  nonsense raises `Unavailable`: refused, nothing stored (fail closed).
- ``enroll_certificate_issued``: after the certificate is stored and before the SCEP
  answer leaves, ``successNotification`` with its thumbprint, serial, expiry and issuer.
- ``enroll_request_refused``: a validated request the core then refused (policy, CA)
  gets a ``failureNotification`` with `HRESULT_REFUSED` and the reason.

Only transactions this process validated get notifications (`_Validated`): the
verification, the issuance and the answer happen in one SCEP request, hence one process.
A renewal signed by the old certificate is not Intune-validated and sends nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from enroll.config import Config
from enroll.door import FrontEnd
from enroll.errors import ConfigError, Unavailable
from enroll.hookspecs import hookimpl
from enroll.model import CertificateRecord, ChallengeContext, EnrollmentRequest, RequestRecord

from . import settings
from .client import client_for, csr_base64

log = logging.getLogger("enroll.intune")

HRESULT_REFUSED = 0x80004005
"""E_FAIL: the CA refused a request Intune had validated (policy, profile, CA error)."""
HRESULT_CHALLENGE = 0x80070005
"""E_ACCESSDENIED: Intune did not validate the request's challenge."""
PROTOCOL = "scep"


class _Validated:
    """(endpoint, transactionID) → the CSR Intune validated, for the notifications that
    follow in the same request; bounded and short-lived."""

    TTL = 3600.0
    MAX = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def add(self, endpoint: str, transaction_id: str, csr: str) -> None:
        with self._lock:
            self._items[(endpoint, transaction_id)] = (csr, time.monotonic() + self.TTL)
            self._items.move_to_end((endpoint, transaction_id))
            while len(self._items) > self.MAX:
                self._items.popitem(last=False)

    def take(self, endpoint: str, transaction_id: str | None) -> str | None:
        if transaction_id is None:
            return None
        with self._lock:
            held = self._items.pop((endpoint, transaction_id), None)
        if held is None or held[1] < time.monotonic():
            return None
        return held[0]


validated = _Validated()


@hookimpl
def enroll_config_sections() -> Mapping[str, Any]:
    return {settings.SECTION: settings.parse}


@hookimpl
def enroll_routes(frontend: FrontEnd) -> None:
    """No routes: the app's start-up is where a SCEP endpoint naming this verifier
    without an ``[intune.endpoints.<label>]`` table (there may be no ``[intune]`` at
    all, so the section's parser never runs) stops enroll instead of refusing every
    device."""
    _parse_checked(frontend.config)


def _parse_checked(config: Config) -> dict[str, settings.IntuneEndpoint]:
    """The section, and every SCEP endpoint naming this verifier has its table."""
    parsed = settings.parse(config)
    scep = config.sections.get("scep") if PROTOCOL in config.sections else None
    endpoints = scep.get("endpoints", {}) if isinstance(scep, Mapping) else {}
    for label, table in (endpoints.items() if isinstance(endpoints, Mapping) else ()):
        if isinstance(table, Mapping) and table.get("challenge_verifier") \
                == settings.VERIFIER and str(label) not in parsed:
            raise ConfigError(f"{settings.SECTION}.endpoints.{label}",
                              f"scep.endpoints.{label} has challenge_verifier = "
                              f"\"{settings.VERIFIER}\": configure its Intune app here")
    return parsed


@hookimpl
def enroll_verify_challenge(context: ChallengeContext, config: Config | None) -> bool | None:
    """Intune's answer for the endpoints that hand it their challenges; None otherwise."""
    if context.protocol != PROTOCOL or context.settings.get("verifier") != settings.VERIFIER:
        return None
    endpoint = settings.parse(config).get(context.endpoint) if config is not None else None
    if endpoint is None or context.csr is None or not context.transaction_id:
        log.warning("intune: SCEP endpoint %s has no Intune settings: refused",
                    context.endpoint)
        return False
    client = client_for(endpoint)
    csr = csr_base64(context.csr)
    answer = client.validate(context.transaction_id, csr)  # Unavailable propagates
    if answer.ok:
        validated.add(context.endpoint, context.transaction_id, csr)
        return True
    try:
        client.failure(context.transaction_id, csr, HRESULT_CHALLENGE,
                       f"{answer.code}: {answer.description}")
    except Unavailable:
        pass  # logged by the client; the request is refused either way
    return False


@hookimpl
def enroll_certificate_issued(certificate: CertificateRecord, request: RequestRecord,
                              config: Config | None) -> None:
    found = _validated(request.protocol, request.endpoint, request.transaction_id, config)
    if found is None:
        return
    endpoint, csr, transaction = found
    answer = client_for(endpoint).success(transaction, csr, certificate.certificate,
                                          certificate.serial_hex)
    if not answer.ok:
        log.warning("intune %s: the success notification of %s was refused: %s",
                    endpoint.label, certificate.serial_hex, answer.code)


@hookimpl
def enroll_request_refused(request: EnrollmentRequest, reason: str,
                           config: Config | None) -> None:
    found = _validated(request.protocol, request.endpoint, request.transaction_id, config)
    if found is None:
        return
    endpoint, csr, transaction = found
    client_for(endpoint).failure(transaction, csr, HRESULT_REFUSED, reason)


def _validated(protocol: str, label: str, transaction: str | None,
               config: Config | None) -> tuple[Any, Any, str] | None:
    """(endpoint settings, CSR, transaction id) of a SCEP request Intune validated in
    this process, taken out of `validated` (each is notified once); else None."""
    if protocol != PROTOCOL or config is None:
        return None
    csr = validated.take(label, transaction)
    endpoint = settings.parse(config).get(label)
    if csr is None or endpoint is None or transaction is None:
        return None
    return endpoint, csr, transaction
