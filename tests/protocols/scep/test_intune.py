"""Intune as the challenge verifier of a SCEP endpoint (plugins/intune), against the
local fake of Entra, Graph and the validation service (`enroll.testing.intune_fake`):
a SCEP enrolment through the app, the notifications Intune receives, failing closed."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from enroll.plugins.intune import client as intune_client
from enroll.plugins.intune import plugin as intune_plugin
from enroll.protocols.scep.failinfo import FailInfo
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import scep_client, scep_operation

from enroll.errors import ConfigError
from enroll.hookspecs import hookimpl
from enroll.model import Decision
from enroll.testing.intune_fake import CLIENT_ID, IntuneFake
from enroll.testing.scep_client import csr_with_challenge

GOOD = "intune-challenge-" + "A" * 300  # Intune's challenges are long; past SCEP's 255
PATH = "/scep/intune"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[IntuneFake]:
    fake = IntuneFake(tmp_path).start()
    fake.challenges.add(GOOD)
    yield fake
    fake.stop()


def _make(harness_factory: Any, fake: IntuneFake, extra_plugins: tuple[object, ...] = (),
          **intune: Any) -> Any:
    return harness_factory(
        extra_plugins=extra_plugins,
        scep={"endpoints": {"intune": {"path": PATH, "challenge_verifier": "intune",
                                       "one_time_challenges": False}}},
        intune={"endpoints": {"intune": fake.settings(**intune)}})


def _enroll(h: Any, challenge: str, cn: str = "device-1") -> tuple[Any, str]:
    client = scep_client(h, PATH)
    tid = os.urandom(12).hex()
    message, _ = client.pkcs_req(csr_with_challenge(client.key, cn, challenge),
                                 transaction_id=tid)
    return client.read(scep_operation(h, message, PATH).content), tid


def test_valid_challenge_issues_and_notifies_success(harness_factory: Any,
                                                     fake: IntuneFake) -> None:
    h = _make(harness_factory, fake)
    reply, tid = _enroll(h, GOOD)
    assert reply.status is PKIStatus.SUCCESS, reply.certrep
    cert = reply.certificate
    assert cert is not None and h.counts() == (1, 1)
    [validate] = fake.actions("validateRequest")
    assert validate["request"]["transactionId"] == tid
    assert x509.load_der_x509_csr(__import__("base64").b64decode(
        validate["request"]["certificateRequest"])).public_key() == cert.public_key()
    [success] = fake.actions("successNotification")
    note = success["notification"]
    assert note["transactionId"] == tid
    assert note["certificateSerialNumber"] == format(cert.serial_number, "x")
    assert note["certificateThumbprint"] == cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    assert note["certificateExpirationDateUtc"] == \
        cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert note["issuingCertificateAuthority"] == cert.issuer.rfc4514_string()
    assert note["certificateRequest"] == validate["request"]["certificateRequest"]
    assert fake.actions("failureNotification") == []
    # One token per resource, then msal's cache; the service discovered once.
    second, _ = _enroll(h, GOOD, "device-2")
    assert second.status is PKIStatus.SUCCESS
    assert fake.count("/oauth2/v2.0/token") == 2
    assert fake.count("/servicePrincipals/") == 1
    assert len(fake.actions("successNotification")) == 2


def test_invalid_challenge_is_refused_and_reported(harness_factory: Any,
                                                   fake: IntuneFake) -> None:
    h = _make(harness_factory, fake)
    reply, tid = _enroll(h, "forged-challenge")
    assert reply.status is PKIStatus.FAILURE
    assert reply.certrep.fail_info is FailInfo.BAD_REQUEST
    assert h.counts() == (0, 0)
    [failure] = fake.actions("failureNotification")
    note = failure["notification"]
    assert note["transactionId"] == tid
    assert note["hResult"] == intune_plugin.HRESULT_CHALLENGE
    assert note["errorDescription"].startswith("ChallengeDecryptionError")
    assert fake.actions("successNotification") == []


class DenyDevices:
    @hookimpl
    def enroll_policy_vote(self, request: Any, profile: Any) -> Decision | None:
        if request.csr.subject.rfc4514_string().startswith("CN=device-"):
            return Decision.deny("no devices today")
        return None


def test_validated_request_the_policy_refuses_is_reported(harness_factory: Any,
                                                          fake: IntuneFake) -> None:
    h = _make(harness_factory, fake, extra_plugins=(DenyDevices(),))
    reply, tid = _enroll(h, GOOD)
    assert reply.status is PKIStatus.FAILURE and h.counts()[0] == 0
    [failure] = fake.actions("failureNotification")
    assert failure["notification"]["transactionId"] == tid
    assert failure["notification"]["hResult"] == intune_plugin.HRESULT_REFUSED
    assert "no devices today" in failure["notification"]["errorDescription"]
    assert fake.actions("successNotification") == []


@pytest.mark.parametrize("mode", ["slow", "error", "garbage"])
def test_misbehaving_service_fails_closed(harness_factory: Any, fake: IntuneFake,
                                          mode: str) -> None:
    h = _make(harness_factory, fake, timeout=1)
    fake.mode, fake.delay = mode, 2.5
    reply, _ = _enroll(h, GOOD)
    assert reply.status is PKIStatus.FAILURE
    assert reply.certrep.fail_info is FailInfo.BAD_REQUEST
    assert h.counts() == (0, 0)
    assert fake.actions("successNotification") == []


def test_unreachable_intune_fails_closed(harness_factory: Any, fake: IntuneFake) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{s.getsockname()[1]}"
    h = _make(harness_factory, fake, authority_url=dead, graph_url=dead)
    reply, _ = _enroll(h, GOOD)
    assert reply.status is PKIStatus.FAILURE
    assert reply.certrep.fail_info is FailInfo.BAD_REQUEST
    assert h.counts() == (0, 0)


def test_wrong_client_secret_fails_closed(harness_factory: Any, fake: IntuneFake) -> None:
    h = _make(harness_factory, fake, client_secret="not-the-secret")  # noqa: S106
    reply, _ = _enroll(h, GOOD)
    assert reply.status is PKIStatus.FAILURE and h.counts() == (0, 0)
    assert fake.actions("validateRequest") == []


def test_untrusted_tls_fails_closed(harness_factory: Any, fake: IntuneFake,
                                    tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
                      if Path("/etc/ssl/certs/ca-certificates.crt").exists()
                      else fake.ca_file.read_bytes().replace(b"A", b"B"))
    h = _make(harness_factory, fake, ca_file=str(other))
    reply, _ = _enroll(h, GOOD)
    assert reply.status is PKIStatus.FAILURE and h.counts() == (0, 0)
    assert fake.count("/oauth2/") == 0


def test_certificate_credential(harness_factory: Any, fake: IntuneFake,
                                tmp_path: Path) -> None:
    """The Entra app authenticates with a certificate: msal signs a client assertion
    the fake checks against the certificate's key."""
    import datetime as dt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "enroll intune app")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    (tmp_path / "app.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "app.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    fake.public_key = key.public_key()
    table = fake.settings(certificate_file=str(tmp_path / "app.pem"),
                          key_file=str(tmp_path / "app.key"))
    del table["client_secret"]
    h = harness_factory(
        scep={"endpoints": {"intune": {"path": PATH, "challenge_verifier": "intune",
                                       "one_time_challenges": False}}},
        intune={"endpoints": {"intune": table}})
    reply, _ = _enroll(h, GOOD)
    assert reply.status is PKIStatus.SUCCESS
    assert len(fake.actions("successNotification")) == 1
    tokens = [c["body"] for c in fake.calls if c["path"].endswith("/token")]
    assert tokens and all(t["client_id"] == CLIENT_ID and
                          t["client_assertion_type"].endswith("jwt-bearer") for t in tokens)


def test_config_errors(make_config: Any, fake: IntuneFake) -> None:
    from enroll.app import create_app

    scep = {"endpoints": {"intune": {"path": PATH, "challenge_verifier": "intune"}}}
    with pytest.raises(ConfigError, match="intune.endpoints.intune"):
        create_app(make_config(scep=scep))
    for bad, key in (({"client_secret": None}, "client_secret"),
                     ({"authority_url": "http://login.example"}, "authority_url"),
                     ({"tenant": "a/b"}, "tenant"), ({"timeout": 600}, "timeout"),
                     ({"surprise": 1}, "surprise")):
        table = {k: v for k, v in {**fake.settings(), **bad}.items() if v is not None}
        with pytest.raises(ConfigError, match=key):
            create_app(make_config(scep=scep, intune={"endpoints": {"intune": table}}))


def test_secret_not_in_repr_or_logs(harness_factory: Any, fake: IntuneFake,
                                    caplog: pytest.LogCaptureFixture) -> None:
    from enroll.testing.intune_fake import CLIENT_SECRET

    h = _make(harness_factory, fake)
    caplog.set_level("DEBUG")
    _enroll(h, GOOD)
    _enroll(h, "forged")
    assert CLIENT_SECRET not in caplog.text
    settings = intune_plugin.settings.parse(h.ctx.config)["intune"]
    assert CLIENT_SECRET not in repr(settings)
    assert intune_client.MAX_RESPONSE_BYTES <= 64 * 1024
