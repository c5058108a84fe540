"""What the notifier sends: one JSON document per event (the webhook's body) and an
e-mail made from it. Pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from enroll.model import CertificateRecord
from enroll.profile_fleet import Migration

SIGNATURE_HEADER = "X-Enroll-Signature"


def _when(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def certificate_event(event: str, certificate: CertificateRecord, now: dt.datetime,
                      **extra: Any) -> dict[str, Any]:
    """``certificate.expiring`` / ``certificate.expired``: what identifies the certificate
    and its holder, and when it expires."""
    return {
        "event": event, "sent_at": _when(now), "serial": certificate.serial_hex,
        "identity": certificate.identity, "subject": certificate.subject,
        "profile": certificate.profile, "ca": certificate.ca,
        "protocol": certificate.protocol, "endpoint": certificate.endpoint,
        "device_id": certificate.device_id, "requester": certificate.requester,
        "not_after": _when(certificate.not_after), **extra,
    }


def deadline_event(profile: str, migration: Migration, stragglers: int,
                   now: dt.datetime) -> dict[str, Any]:
    return {"event": "migration.deadline", "sent_at": _when(now), "profile": profile,
            "to": migration.to, "endpoint": migration.endpoint,
            "after": _when(migration.after), "mode": migration.mode,
            "stragglers": stragglers}


def body(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, payload: bytes) -> str:
    """The ``X-Enroll-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the body
    (a receiver recomputes it and compares in constant time)."""
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def _days(seconds: int) -> str:
    """``24 days``, ``5 hours``, ``8 minutes`` (rounded down, at least 1 minute)."""
    unit, length = next((u, n) for u, n in (("day", 86400), ("hour", 3600), ("minute", 60))
                        if seconds >= n or u == "minute")
    count = max(1, seconds // length)
    return f"{count} {unit}{'s' if count != 1 else ''}"


def subject_line(event: dict[str, Any]) -> str:
    """What happened, to whom and when, in one line (control characters a certificate's
    name might carry are replaced: no header injection)."""
    return "".join(c if c.isprintable() else "?" for c in _subject_line(event))


def _subject_line(event: dict[str, Any]) -> str:
    kind = event["event"]
    if kind == "certificate.expiring":
        return (f"[enroll] {event['identity'] or event['subject']} ({event['profile']}): "
                f"certificate expires in {_days(int(event['remaining_seconds']))}, "
                f"{event['not_after']}")
    if kind == "certificate.expired":
        return (f"[enroll] {event['identity'] or event['subject']} ({event['profile']}): "
                f"certificate expired {event['not_after']} without renewal")
    return (f"[enroll] migration deadline {event['after']} for profile {event['profile']}: "
            f"{event['stragglers']} still off {str(event['to']).upper()}")


def email(event: dict[str, Any], sender: str, recipients: tuple[str, ...],
          now: dt.datetime) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject_line(event)[:250]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(now.astimezone(dt.UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["X-Enroll-Event"] = str(event["event"])
    lines = [subject_line(event).removeprefix("[enroll] "), ""]
    lines += ["".join(c if c.isprintable() else "?" for c in f"{key}: {value}")
              for key, value in sorted(event.items()) if value is not None]
    message.set_content("\n".join(lines) + "\n")
    return message
