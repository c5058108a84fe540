"""Intune's SCEP validation service as Microsoft documents it for third-party CAs.

1. A token for the Entra app (client credentials: a secret or a certificate) from the
   tenant's authority, through `msal` (which caches it until it expires).
2. The service's address, discovered through Microsoft Graph: the endpoints of Intune's
   service principal (appId ``0000000a-0000-0000-c000-000000000000``), the one whose
   providerName is ``ScepRequestValidationFEService``. Kept for `DISCOVERY_TTL`, dropped
   when the service cannot be reached (its address may have moved).
3. JSON POSTs to ``<uri>/ScepActions/validateRequest``, ``…/successNotification`` and
   ``…/failureNotification`` with a token for the Intune resource; the answer's
   ``code`` is ``Success`` or why not (``ChallengeExpired``, ``SubjectNameMismatch``…).

Anything but a well-formed answer — no token, no route, a timeout, an HTTP error, a body
that is not the documented JSON — is `IntuneUnavailable` (an `enroll.errors.Unavailable`):
the caller fails closed. Every call is bounded by the endpoint's timeout and answers are
read up to `MAX_RESPONSE_BYTES`; redirects are not followed; secrets and tokens are
never logged.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from enroll.errors import Unavailable

from .settings import IntuneEndpoint

if TYPE_CHECKING:
    import msal

log = logging.getLogger("enroll.intune")

INTUNE_APP_ID = "0000000a-0000-0000-c000-000000000000"
SERVICE_NAME = "ScepRequestValidationFEService"
API_VERSION = "2018-02-20"
VALIDATE = "ScepActions/validateRequest"
SUCCESS = "ScepActions/successNotification"
FAILURE = "ScepActions/failureNotification"
MAX_RESPONSE_BYTES = 64 * 1024
DISCOVERY_TTL = 3600.0
MAX_DESCRIPTION = 255
"""Intune keeps at most 255 characters of a failure's description."""


class IntuneUnavailable(Unavailable):
    """Intune (or Entra, or Graph) could not give an answer; the detail is client-safe."""

    def __init__(self) -> None:
        super().__init__("the Intune challenge validation service is unavailable; "
                         "retry later")


@dataclass(frozen=True, slots=True)
class Answer:
    """What the service said: ``code`` ``Success`` or the reason it refused."""

    code: str
    description: str

    @property
    def ok(self) -> bool:
        return self.code == "Success"


def csr_base64(csr: x509.CertificateSigningRequest) -> str:
    """The PKCS#10 as the service expects it: base64 of the DER, no PEM armour."""
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


def thumbprint(certificate: x509.Certificate) -> str:
    """The thumbprint Windows and Intune show: SHA-1 of the DER, upper-case hex."""
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - an id


def expiry(certificate: x509.Certificate) -> str:
    """notAfter as the service wants it (ISO 8601 UTC with milliseconds)."""
    return certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class IntuneClient:
    """One Entra app's session with one tenant's Intune; shared across threads."""

    def __init__(self, endpoint: IntuneEndpoint) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None
        self._service: tuple[str, float] | None = None

    # -- the three calls ------------------------------------------------------------------

    def validate(self, transaction_id: str, csr: str) -> Answer:
        return self._action(VALIDATE, transaction_id, {"request": {
            "transactionId": transaction_id, "certificateRequest": csr,
            "callerInfo": self.endpoint.provider}})

    def success(self, transaction_id: str, csr: str, certificate: x509.Certificate,
                serial_hex: str) -> Answer:
        return self._action(SUCCESS, transaction_id, {"notification": {
            "transactionId": transaction_id, "certificateRequest": csr,
            "certificateThumbprint": thumbprint(certificate),
            "certificateSerialNumber": serial_hex,
            "certificateExpirationDateUtc": expiry(certificate),
            "issuingCertificateAuthority": certificate.issuer.rfc4514_string(),
            "callerInfo": self.endpoint.provider}})

    def failure(self, transaction_id: str, csr: str, hresult: int,
                description: str) -> Answer:
        return self._action(FAILURE, transaction_id, {"notification": {
            "transactionId": transaction_id, "certificateRequest": csr,
            "hResult": hresult,
            "errorDescription": (description or "refused")[:MAX_DESCRIPTION],
            "callerInfo": self.endpoint.provider}})

    # -- plumbing -------------------------------------------------------------------------

    def _action(self, action: str, transaction_id: str, body: dict[str, Any]) -> Answer:
        uri = self._service_uri()
        token = self._token(self.endpoint.intune_resource.rstrip("/") + "//.default")
        activity = str(uuid.uuid4())
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json",
                   "accept": "application/json", "client-request-id": activity,
                   "api-version": API_VERSION, "user-agent": self.endpoint.provider}
        try:
            status, answer = self._call("POST", f"{uri}/{action}", headers,
                                        json.dumps(body).encode())
        except IntuneUnavailable:
            with self._lock:
                self._service = None
            raise
        code, description = answer.get("code"), answer.get("errorDescription", "")
        if not 200 <= status < 300 or not isinstance(code, str) or not code:
            log.warning("intune %s: %s answered HTTP %d (activity %s, transaction %s)",
                        self.endpoint.label, action, status, activity, transaction_id)
            raise IntuneUnavailable()
        result = Answer(code[:128], str(description or "")[:MAX_DESCRIPTION])
        log.info("intune %s: %s for transaction %s: %s (activity %s)", self.endpoint.label,
                 action, transaction_id, result.code, activity)
        return result

    def _service_uri(self) -> str:
        with self._lock:
            if self._service is not None and self._service[1] > time.monotonic():
                return self._service[0]
        token = self._token(self.endpoint.graph_url + "/.default")
        url = (f"{self.endpoint.graph_url}/v1.0/servicePrincipals/"
               f"appId={INTUNE_APP_ID}/endpoints")
        status, answer = self._call("GET", url, {"authorization": f"Bearer {token}",
                                                 "accept": "application/json",
                                                 "client-request-id": str(uuid.uuid4())})
        values = answer.get("value")
        if status != 200 or not isinstance(values, list):
            log.warning("intune %s: Graph answered HTTP %d to the service discovery",
                        self.endpoint.label, status)
            raise IntuneUnavailable()
        for item in values:
            if isinstance(item, dict) and str(item.get("providerName", "")).lower() \
                    == SERVICE_NAME.lower() and isinstance(item.get("uri"), str) \
                    and item["uri"].startswith("https://"):
                uri = str(item["uri"]).rstrip("/")
                with self._lock:
                    self._service = (uri, time.monotonic() + DISCOVERY_TTL)
                return uri
        log.warning("intune %s: Graph lists no %s endpoint for the tenant",
                    self.endpoint.label, SERVICE_NAME)
        raise IntuneUnavailable()

    def _token(self, scope: str) -> str:
        try:
            result = self._msal().acquire_token_for_client(scopes=[scope])
        except IntuneUnavailable:
            raise
        except Exception as exc:  # msal raises requests' and its own errors
            log.warning("intune %s: no token from %s: %s", self.endpoint.label,
                        self.endpoint.authority_url, type(exc).__name__)
            raise IntuneUnavailable() from exc
        token = result.get("access_token") if isinstance(result, dict) else None
        if not isinstance(token, str) or not token:
            error = result.get("error") if isinstance(result, dict) else None
            log.warning("intune %s: Entra refused a token for %s: %s", self.endpoint.label,
                        scope, error)
            raise IntuneUnavailable()
        return token

    def _msal(self) -> msal.ConfidentialClientApplication:
        # Built on first use, not at start-up: msal reads the authority's OpenID
        # configuration when built, and Entra being down must not stop enroll starting.
        with self._lock:
            if self._app is not None:
                return self._app
        import msal  # the ``intune`` extra; settings.parse checked it is installed

        endpoint = self.endpoint
        credential: Any
        if endpoint.credential.secret is not None:
            credential = endpoint.credential.secret.reveal()
        else:
            assert endpoint.credential.certificate_pem is not None  # noqa: S101
            assert endpoint.credential.key_pem is not None  # noqa: S101
            cert = x509.load_pem_x509_certificate(endpoint.credential.certificate_pem.encode())
            credential = {"private_key": endpoint.credential.key_pem.reveal(),
                          "thumbprint": thumbprint(cert),
                          "public_certificate": endpoint.credential.certificate_pem}
        try:
            app = msal.ConfidentialClientApplication(
                endpoint.client_id, client_credential=credential,
                authority=f"{endpoint.authority_url}/{endpoint.tenant}",
                instance_discovery=False, http_client=_session(endpoint))
        except Exception as exc:
            log.warning("intune %s: the authority %s cannot be used: %s", endpoint.label,
                        endpoint.authority_url, type(exc).__name__)
            raise IntuneUnavailable() from exc
        with self._lock:
            if self._app is None:
                self._app = app
            return self._app

    def _call(self, method: str, url: str, headers: dict[str, str],
              body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        """(status, JSON object) of one bounded request; anything else is unavailable."""
        where = httpx.URL(url).host
        try:
            with httpx.Client(timeout=self.endpoint.timeout, follow_redirects=False,
                              trust_env=False, verify=self._tls()) as client:
                with client.stream(method, url, content=body, headers=headers) as response:
                    data = b""
                    for chunk in response.iter_bytes():
                        data += chunk
                        if len(data) > MAX_RESPONSE_BYTES:
                            log.warning("intune %s: answer from %s too large",
                                        self.endpoint.label, where)
                            raise IntuneUnavailable()
                    status = response.status_code
        except httpx.HTTPError as exc:
            log.warning("intune %s: %s unreachable: %s", self.endpoint.label, where,
                        type(exc).__name__)
            raise IntuneUnavailable() from exc
        try:
            answer = json.loads(data) if data else {}
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            log.warning("intune %s: %s answered HTTP %d without a JSON object",
                        self.endpoint.label, where, status)
            raise IntuneUnavailable()
        return status, answer

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.endpoint.ca_file)


def _session(endpoint: IntuneEndpoint) -> Any:
    """msal's HTTP client: bounded by the timeout, verifying against ``ca_file`` (or the
    system store) and ignoring the environment (requests would let
    ``REQUESTS_CA_BUNDLE`` override an explicit CA, and honour proxy variables)."""
    import requests

    class Session(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", endpoint.timeout)
            kwargs["allow_redirects"] = False
            return super().request(*args, **kwargs)

    session = Session()
    session.trust_env = False
    session.verify = endpoint.verify
    return session


_clients: dict[IntuneEndpoint, IntuneClient] = {}
_clients_lock = threading.Lock()
MAX_CLIENTS = 64


def client_for(endpoint: IntuneEndpoint) -> IntuneClient:
    """The shared client of these settings, so msal's token cache and the discovered
    address outlive one request (a changed setting makes a new one)."""
    with _clients_lock:
        current = _clients.get(endpoint)
        if current is None:
            if len(_clients) >= MAX_CLIENTS:
                _clients.pop(next(iter(_clients)))
            current = _clients[endpoint] = IntuneClient(endpoint)
        return current
