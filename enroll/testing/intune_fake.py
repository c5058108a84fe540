"""A local stand-in for Entra ID, Microsoft Graph and Intune's SCEP validation service.

It serves, over TLS on loopback (msal insists on an https authority), exactly what the
Intune plugin (plugins/intune) calls, with the documented shapes:

- ``GET /<tenant>/v2.0/.well-known/openid-configuration`` and
  ``POST /<tenant>/oauth2/v2.0/token`` (client credentials: the secret, or a client
  assertion signed by the app's certificate, checked against `public_key`);
- ``GET /v1.0/servicePrincipals/appId=0000000a-…/endpoints`` (Graph);
- ``POST /scep/ScepActions/{validateRequest,successNotification,failureNotification}``.

A CSR validates when its challengePassword is in `challenges`. `mode` makes the service
misbehave: ``slow`` (answers after `delay` seconds), ``error`` (HTTP 503), ``garbage``
(HTTP 200, not JSON). Every call is in `calls`. For a manual run::

    python -m enroll.testing.intune_fake /tmp/intune-fake   # prints the URLs, CA file

Test support only, like the rest of `enroll.testing`.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import ssl
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AttributeOID, NameOID

INTUNE_APP_ID = "0000000a-0000-0000-c000-000000000000"
TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "fake-entra-client-secret-0123456789"  # noqa: S105 - test value
SERVICE_PATH = "/scep"


class IntuneFake:
    """The fake's state; `start` serves it on 127.0.0.1 until `stop`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.challenges: set[str] = set()
        self.mode = "ok"
        self.delay = 3.0
        self.public_key: Any = None
        """The app certificate's public key, to accept client assertions it signed."""
        self.calls: list[dict[str, Any]] = []
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self.ca_file = directory / "intune-fake-ca.pem"
        self._server: http.server.ThreadingHTTPServer | None = None

    # -- what a test reads --------------------------------------------------------------

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def actions(self, name: str) -> list[dict[str, Any]]:
        """The JSON bodies POSTed to ``ScepActions/<name>``."""
        return [c["body"] for c in self.calls if c["path"].endswith(f"/ScepActions/{name}")]

    def count(self, path_part: str) -> int:
        return sum(1 for c in self.calls if path_part in c["path"])

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """An ``[intune.endpoints.<label>]`` table pointing at this fake."""
        return {"tenant": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "authority_url": self.base, "graph_url": self.base,
                "intune_resource": f"{self.base}/intune/", "ca_file": str(self.ca_file),
                "timeout": 2, **overrides}

    # -- serving ------------------------------------------------------------------------

    def start(self) -> IntuneFake:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intune fake")])
        import ipaddress

        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                .add_extension(x509.SubjectAlternativeName([
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost")]), False)
                .sign(key, hashes.SHA256()))
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file = self.directory / "intune-fake-key.pem"
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        fake = self

        class Handler(_Handler):
            state = fake

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- the endpoints -----------------------------------------------------------------

    def _token(self, form: dict[str, str], token_url: str) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "client_credentials" or form.get("client_id") != CLIENT_ID:
            return 400, {"error": "unauthorized_client"}
        if "client_secret" in form:
            authenticated = form["client_secret"] == CLIENT_SECRET
        else:
            authenticated = self._assertion_ok(form.get("client_assertion", ""), token_url)
        if not authenticated:
            return 401, {"error": "invalid_client",
                         "error_description": "AADSTS7000215: Invalid client secret"}
        scope = form.get("scope", "")
        token = f"token-{len(self._tokens)}-{time.monotonic_ns()}"
        with self._lock:
            self._tokens[token] = scope
        return 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token}

    def _assertion_ok(self, assertion: str, token_url: str) -> bool:
        if self.public_key is None or not assertion:
            return False
        try:
            claims = jwt.decode(assertion, self.public_key, algorithms=["RS256", "PS256"],
                                audience=token_url)
        except jwt.PyJWTError:
            return False
        return bool(claims.get("iss") == CLIENT_ID == claims.get("sub"))

    def _scope_of(self, headers: Any) -> str | None:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return None
        with self._lock:
            return self._tokens.get(auth[7:])

    def _action(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name == "validateRequest":
            csr = base64.b64decode(body["request"]["certificateRequest"])
            request = x509.load_der_x509_csr(csr)
            try:
                challenge = request.attributes.get_attribute_for_oid(
                    AttributeOID.CHALLENGE_PASSWORD).value.decode()
            except x509.AttributeNotFound:
                return {"code": "ChallengePasswordMissing", "errorDescription": "no challenge"}
            if challenge in self.challenges:
                return {"code": "Success", "errorDescription": ""}
            return {"code": "ChallengeDecryptionError",
                    "errorDescription": "the challenge could not be decrypted"}
        return {"code": "Success", "errorDescription": ""}


class _Handler(http.server.BaseHTTPRequestHandler):
    state: IntuneFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, status: int, answer: Any, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: Any) -> None:
        with self.state._lock:  # noqa: SLF001 - the fake's own lock
            self.state.calls.append({"method": self.command, "path": self.path,
                                     "headers": dict(self.headers.items()), "body": body})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state = self.state
        self._record(None)
        path = urllib.parse.urlsplit(self.path).path
        if path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            base = f"{state.base}/{TENANT}"
            return self._send(200, {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"})
        if path == f"/v1.0/servicePrincipals/appId={INTUNE_APP_ID}/endpoints":
            if state._scope_of(self.headers) != f"{state.base}/.default":  # noqa: SLF001
                return self._send(401, {"error": {"code": "InvalidAuthenticationToken"}})
            return self._send(200, {"value": [
                {"capability": "x", "providerName": "PkiConnectorFEService",
                 "uri": f"{state.base}/other"},
                {"capability": "x", "providerName": "ScepRequestValidationFEService",
                 "uri": f"{state.base}{SERVICE_PATH}"}]})
        return self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        state = self.state
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        path = urllib.parse.urlsplit(self.path).path
        if path == f"/{TENANT}/oauth2/v2.0/token":
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            self._record({k: v for k, v in form.items()
                          if k not in ("client_secret", "client_assertion")})
            status, answer = state._token(form, f"{state.base}{path}")  # noqa: SLF001
            return self._send(status, answer)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self._record(body)
        prefix = f"{SERVICE_PATH}/ScepActions/"
        if not path.startswith(prefix) or not isinstance(body, dict):
            return self._send(404, {"error": "not found"})
        if state._scope_of(self.headers) != f"{state.base}/intune//.default" \
                or self.headers.get("api-version") != "2018-02-20":  # noqa: SLF001
            return self._send(401, {"code": "Unauthorized"})
        if state.mode == "slow":
            time.sleep(state.delay)
        if state.mode == "error":
            return self._send(503, {"error": "ServiceUnavailable"})
        if state.mode == "garbage":
            return self._send(200, None, raw=b"<html>maintenance</html>")
        return self._send(200, state._action(path[len(prefix):], body))  # noqa: SLF001


def main(argv: list[str]) -> int:
    directory = Path(argv[1] if len(argv) > 1 else ".")
    directory.mkdir(parents=True, exist_ok=True)
    fake = IntuneFake(directory).start()
    fake.challenges.add(argv[2] if len(argv) > 2 else "intune-challenge")
    print(json.dumps({"authority_url": fake.base, "graph_url": fake.base,
                      "intune_resource": f"{fake.base}/intune/", "ca_file": str(fake.ca_file),
                      "tenant": TENANT, "client_id": CLIENT_ID,
                      "client_secret": CLIENT_SECRET,
                      "challenges": sorted(fake.challenges)}, indent=2), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
