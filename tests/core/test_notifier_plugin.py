"""The built-in notifier: lifecycle events reach a real webhook receiver (signed) and a
real SMTP server on loopback; a dead channel is logged, never raised, and does not stop
the other; a wrong ``[notify]`` stops start-up naming the key."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from harness import free_port

from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.errors import ConfigError
from enroll.lifecycle import Lifecycle
from enroll.model import Issued
from enroll.testing import make_csr, request

SECRET = "webhook signing secret for the test"  # noqa: S105 - tests only
Build = Callable[..., AppContext]


class Receiver:
    """A webhook receiver on 127.0.0.1: keeps each POST's headers and body."""

    def __init__(self, status: int = 204) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received, answer = self.received, status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length", "0"))
                received.append(({k.lower(): v for k, v in self.headers.items()},
                                 self.rfile.read(length)))
                self.send_response(answer)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/enroll?token=t0p"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An aiosmtpd handler keeping every message delivered."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content)))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"enroll" \
        and hmac.compare_digest(auth_data.password, b"smtp secret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port,
                            authenticator=_authenticator, auth_require_tls=False)
    controller.start()
    yield box, port
    controller.stop()


def _smtp_section(port: int, **extra: Any) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_from": "pki@example.net",
            "smtp_to": ["ops@example.net", "pki-team@example.net"], "smtp_timeout": "5s",
            **extra}


def _expiring(build: Build, notify: dict[str, Any]) -> tuple[AppContext, Issued]:
    """An engine with `notify`, one certificate issued, the clock 25 days before its end."""
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    ctx = build(clock=clock, notify=notify)
    outcome = ctx.authority.submit(request(make_csr(cn="dev-42.example"),
                                           protocol="scep"))
    assert isinstance(outcome, Issued)
    clock.advance(dt.timedelta(days=340))
    return ctx, outcome


def test_an_expiring_certificate_is_posted_signed_and_mailed(
        build: Build, receiver: Receiver, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    ctx, issued = _expiring(build, {
        "webhook_url": receiver.url, "webhook_secret": SECRET,
        **_smtp_section(port, smtp_user="enroll", smtp_password="smtp secret")})  # noqa: S106
    job = Lifecycle(ctx.db, ctx.pm, ctx.config, ctx.clock)
    assert job.run().expiring == 1

    [(headers, body)] = receiver.received
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-enroll-signature"], expected)
    assert headers["content-type"] == "application/json"
    assert headers["x-enroll-event"] == "certificate.expiring"
    event = json.loads(body)
    not_after = issued.certificate.not_valid_after_utc
    assert event == {
        "event": "certificate.expiring", "sent_at": event["sent_at"],
        "serial": issued.serial_hex, "identity": "subject.CN:dev-42.example",
        "subject": "CN=dev-42.example", "profile": "device", "ca": "issuing",
        "protocol": "scep", "endpoint": "", "device_id": None,
        "requester": "test",
        "not_after": not_after.isoformat().replace("+00:00", "Z"),
        "remaining_seconds": event["remaining_seconds"], "threshold_seconds": 30 * 86400,
    }
    assert 24 * 86400 < event["remaining_seconds"] <= 25 * 86400 + 3600

    [(sender, recipients, message)] = box.messages
    assert sender == "pki@example.net"
    assert recipients == ["ops@example.net", "pki-team@example.net"]
    assert message["From"] == "pki@example.net"
    assert message["To"] == "ops@example.net, pki-team@example.net"
    assert message["X-Enroll-Event"] == "certificate.expiring"
    assert " ".join(str(message["Subject"]).split()) == (  # unfolded
        "[enroll] subject.CN:dev-42.example (device): certificate expires in "
        f"{event['remaining_seconds'] // 86400} days, {event['not_after']}")
    text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert f"serial: {issued.serial_hex}" in text and "protocol: scep" in text

    assert job.run().total == 0  # once
    assert len(receiver.received) == 1 and len(box.messages) == 1


def test_expired_and_migration_deadline_events_reach_the_webhook(
        build: Build, receiver: Receiver) -> None:
    import copy

    from enroll import config as config_mod

    clock = FrozenClock(dt.datetime.now(dt.UTC))
    profile = copy.deepcopy(config_mod.default_raw_config()["profiles"]["device"])
    after = clock.now() + dt.timedelta(days=1)
    profile.update(validity="10d", migration={"to": "acme", "after": after.isoformat()})
    ctx = build(clock=clock, notify={"webhook_url": receiver.url},
                extra_profiles={"fleet": profile})
    ctx.authority.submit(request(make_csr(cn="old.example"), "fleet", protocol="scep"))
    clock.advance(dt.timedelta(days=10, hours=1))
    Lifecycle(ctx.db, ctx.pm, ctx.config, ctx.clock).run()
    events = {json.loads(b)["event"]: (h, json.loads(b)) for h, b in receiver.received}
    assert set(events) == {"migration.deadline", "certificate.expired"}
    deadline = events["migration.deadline"][1]
    assert (deadline["profile"], deadline["to"], deadline["stragglers"]) == \
        ("fleet", "acme", 0)  # its only certificate has expired: nobody left behind
    assert events["certificate.expired"][1]["identity"] == "subject.CN:old.example"
    assert "x-enroll-signature" not in events["certificate.expired"][0]  # no secret set


def test_a_dead_webhook_is_logged_and_the_mail_still_goes(
        build: Build, smtp: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture) -> None:
    box, port = smtp
    dead = f"http://127.0.0.1:{free_port()}/hook?token=t0p"
    ctx, _ = _expiring(build, {"webhook_url": dead, "webhook_timeout": "2s",
                               "webhook_secret": SECRET, **_smtp_section(port)})
    with caplog.at_level(logging.WARNING, logger="enroll.notifier"):
        assert Lifecycle(ctx.db, ctx.pm, ctx.config, ctx.clock).run().expiring == 1
    assert "webhook 127.0.0.1 unreachable for certificate.expiring" in caplog.text
    assert "t0p" not in caplog.text and SECRET not in caplog.text
    assert len(box.messages) == 1


def test_a_refusing_smtp_server_and_a_failing_webhook_answer_are_logged(
        build: Build, caplog: pytest.LogCaptureFixture) -> None:
    failing = Receiver(status=500)
    try:
        ctx, _ = _expiring(build, {"webhook_url": failing.url,
                                   **_smtp_section(free_port(), smtp_timeout="2s")})
        with caplog.at_level(logging.WARNING, logger="enroll.notifier"):
            assert Lifecycle(ctx.db, ctx.pm, ctx.config, ctx.clock).run().expiring == 1
    finally:
        failing.close()
    assert "answered HTTP 500 for certificate.expiring" in caplog.text
    assert "mail via 127.0.0.1" in caplog.text


def test_wrong_smtp_credentials_are_logged_not_raised(
        build: Build, smtp: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture) -> None:
    box, port = smtp
    ctx, _ = _expiring(build, _smtp_section(port, smtp_user="enroll",
                                            smtp_password="wrong password"))  # noqa: S106
    with caplog.at_level(logging.WARNING, logger="enroll.notifier"):
        Lifecycle(ctx.db, ctx.pm, ctx.config, ctx.clock).run()
    assert "SMTPAuthenticationError" in caplog.text and "wrong password" not in caplog.text
    assert box.messages == []


@pytest.mark.parametrize(("notify", "key"), [
    ({"smtp_host": "mail.example.net", "smtp_from": "pki@example.net"}, "notify.smtp_to"),
    ({"smtp_port": 25}, "notify.smtp_port"),
    ({"webhook_url": "ftp://hooks.example.net/"}, "notify.webhook_url"),
    ({"webhook_url": "https://h.example/", "webhok_secret": "x"}, "notify.webhok_secret"),
    ({"webhook_url": "https://h.example/", "webhook_timeout": "10m"},
     "notify.webhook_timeout"),
    ({"smtp_host": "m.example", "smtp_from": "a@example", "smtp_to": ["b@example"],
      "smtp_user": "u"}, "notify.smtp_password"),
])
def test_a_wrong_notify_section_stops_start_up_naming_the_key(
        build: Build, notify: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(notify=notify)
    assert caught.value.key == key


def test_the_subject_says_how_long_is_left_in_the_right_unit() -> None:
    from enroll.plugins.notifier.messages import subject_line

    def subject(remaining: int) -> str:
        return subject_line({"event": "certificate.expiring", "identity": "dev\r\nBcc: x",
                             "subject": "CN=dev", "profile": "p",
                             "remaining_seconds": remaining, "not_after": "T"})

    assert subject(524) == "[enroll] dev??Bcc: x (p): certificate expires in 8 minutes, T"
    assert "in 5 hours," in subject(5 * 3600 + 59)
    assert "in 1 day," in subject(86400) and "in 24 days," in subject(24 * 86400 + 5)
    assert "in 1 minute," in subject(3)
