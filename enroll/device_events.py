"""MDM off-boarding events: ``POST <prefix>/events/device`` revokes a device's or a
user's certificates.

An MDM (or the small forwarder in ``examples/device_events/`` that turns an Intune or
Jamf webhook into this shape) posts::

    {"id": "evt-123", "event": "device.retired", "device_id": "C02XK1ZZJG5J"}

and every live certificate of that device is revoked in one transaction, whichever
protocol issued it (`Authority.revoke_selected`). Events and reasons:

- ``device.retired``, ``device.wiped`` -> ``cessationOfOperation``;
- ``user.left`` -> ``affiliationChanged``.

The selector is exactly one of ``device_id`` (the certificates' device id), ``identity``
(their identity, ``subject.CN:dev-42``) or ``user``: the certificates whose requester is
that value, and those whose identity is (a user enrolled with their own account, or a
profile whose identity is the requester).

Authentication (`[events]`; nothing configured: the route does not exist, 404): an HMAC
of ``<X-Enroll-Timestamp>.<body>`` with ``hmac_secret`` (``X-Enroll-Signature:
sha256=<hex>``), or ``Authorization: Bearer <bearer_token>``; either way the
``X-Enroll-Timestamp`` (unix seconds) must be within ``max_skew`` (300 s) of now. Every
authentication failure gets the same 401. Secrets are compared in constant time and
never logged.

Replay protection: the event's ``id`` is inserted into ``device_events`` in the
revoking transaction, so an event is applied exactly once; a replayed id is answered
200 with ``"duplicate": true`` and revokes nothing (an MDM retrying a delivery whose
answer it lost must not be told to retry again). Rows older than ``retain`` (at least
twice ``max_skew``: any replay whose timestamp is still accepted finds its row) are
deleted in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from enroll import bounded_json
from enroll.bulk_revocation import Selector
from enroll.config import Config
from enroll.config_values import Secret, as_duration, as_str, as_table, check_keys
from enroll.endpoints import cached
from enroll.errors import ConfigError, Conflict, MalformedInput
from enroll.model import CertificateRecord
from enroll.store.schema import device_events
from enroll.store.transaction import Tx

if TYPE_CHECKING:
    from enroll.authority import Authority
    from enroll.context import AppContext

log = logging.getLogger("enroll.device_events")
SECTION = "events"
KEYS = {"hmac_secret", "bearer_token", "max_skew", "retain"}
EVENTS: Mapping[str, x509.ReasonFlags] = {
    "device.retired": x509.ReasonFlags.cessation_of_operation,
    "device.wiped": x509.ReasonFlags.cessation_of_operation,
    "user.left": x509.ReasonFlags.affiliation_changed,
}
SELECTOR_FIELDS = ("device_id", "identity", "user")
MAX_BODY = 16 * 1024
MAX_ID = 128
MAX_VALUE = 256
SIGNATURE_HEADER = "x-enroll-signature"
TIMESTAMP_HEADER = "x-enroll-timestamp"
DEFAULT_SKEW = 300
DEFAULT_RETAIN = 7 * 86400


@dataclass(frozen=True, slots=True)
class EventsSettings:
    hmac_secret: Secret | None
    bearer_token: Secret | None
    max_skew: int
    retain: int


def parse(config: Config) -> EventsSettings | None:
    """The ``[events]`` table; None when it configures no secret (the route is off)."""
    table = as_table(config.section(SECTION), SECTION)
    check_keys(table, KEYS, SECTION)
    secrets: dict[str, Secret | None] = {}
    for key in ("hmac_secret", "bearer_token"):
        value = table.get(key)
        if value is None:
            secrets[key] = None
            continue
        text = as_str(value, f"{SECTION}.{key}")
        if len(text) < 16:
            raise ConfigError(f"{SECTION}.{key}", "must be at least 16 characters")
        secrets[key] = Secret(text)
    skew = as_duration(table.get("max_skew", DEFAULT_SKEW), f"{SECTION}.max_skew")
    retain = as_duration(table.get("retain", DEFAULT_RETAIN), f"{SECTION}.retain")
    if not 1 <= skew <= 3600:
        raise ConfigError(f"{SECTION}.max_skew", "must be between 1s and 1h")
    if retain < 2 * skew:
        raise ConfigError(f"{SECTION}.retain", "must be at least twice max_skew (a "
                          "replay within the timestamp window must find its event)")
    if secrets["hmac_secret"] is None and secrets["bearer_token"] is None:
        return None
    return EventsSettings(secrets["hmac_secret"], secrets["bearer_token"], skew, retain)


def settings(config: Config) -> EventsSettings | None:
    return cached(config, SECTION, parse)


# -- the event ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DeviceEvent:
    id: str
    event: str
    field: str
    value: str

    @property
    def reason(self) -> x509.ReasonFlags:
        return EVENTS[self.event]

    @property
    def selectors(self) -> tuple[Selector, ...]:
        if self.field == "user":
            return (Selector("requester", self.value), Selector("identity", self.value))
        return (Selector(self.field, self.value),)


def parse_event(body: bytes) -> DeviceEvent:
    """The event `body` carries; `MalformedInput` saying what is wrong."""
    value = bounded_json.loads(body, what="the event", max_bytes=MAX_BODY, max_depth=4)
    if not isinstance(value, dict):
        raise MalformedInput("the event must be a JSON object")
    event_id = value.get("id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= MAX_ID:
        raise MalformedInput(f"id must be a string of 1 to {MAX_ID} characters")
    kind = value.get("event")
    if kind not in EVENTS:
        raise MalformedInput(f"unknown event (expected one of: {', '.join(EVENTS)})")
    given = [f for f in SELECTOR_FIELDS if f in value]
    if len(given) != 1:
        raise MalformedInput(f"give exactly one of {', '.join(SELECTOR_FIELDS)}")
    selected = value[given[0]]
    if not isinstance(selected, str) or not 1 <= len(selected) <= MAX_VALUE:
        raise MalformedInput(f"{given[0]} must be a string of 1 to {MAX_VALUE} characters")
    return DeviceEvent(event_id, str(kind), given[0], selected)


# -- authentication -------------------------------------------------------------------

def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Enroll-Signature`` value of `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def authenticate(config: EventsSettings, headers: Mapping[str, str], body: bytes,
                 now: dt.datetime) -> str | None:
    """How the request authenticated (``hmac`` / ``bearer``), or None."""
    stamp = headers.get(TIMESTAMP_HEADER, "")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return None
    if abs(now.timestamp() - int(stamp)) > config.max_skew:
        return None
    signature = headers.get(SIGNATURE_HEADER)
    if signature is not None and config.hmac_secret is not None:
        expected = sign(config.hmac_secret.reveal(), stamp, body)
        ok = hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
        return "hmac" if ok else None
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if config.bearer_token is not None and scheme.lower() == "bearer" and token:
        ok = hmac.compare_digest(config.bearer_token.reveal().encode(),
                                 token.strip().encode("utf-8", "replace"))
        return "bearer" if ok else None
    return None


# -- applying an event ----------------------------------------------------------------

class Duplicate(Exception):
    """The event's id was applied before."""


def apply(authority: Authority, config: EventsSettings, event: DeviceEvent,
          auth: str) -> list[CertificateRecord]:
    """Revoke what `event` selects, its id recorded in the same transaction;
    `Duplicate` for an id seen before (nothing revoked)."""
    now = authority.clock.now()

    def record(tx: Tx) -> Mapping[str, Any]:
        tx.run("DELETE FROM device_events WHERE received_at < ?",
               (tx.when(now - dt.timedelta(seconds=config.retain)),))
        if tx.scalar("SELECT 1 FROM device_events WHERE id = ?", (event.id,)) is not None:
            raise Duplicate
        tx.insert(device_events, {"id": event.id, "event": event.event, "received_at": now,
                                  "details": {event.field: event.value, "auth": auth}})
        return {"event": event.event, "event_id": event.id}

    try:
        return authority.revoke_selected(event.selectors, event.reason,
                                         f"mdm-event:{auth}", within=record)
    except IntegrityError:  # a concurrent delivery of the same id committed first
        raise Duplicate from None


# -- the route ------------------------------------------------------------------------

def routes(ctx: AppContext) -> list[BaseRoute]:
    """``/events/device`` when ``[events]`` configures a secret, else nothing."""
    config = settings(ctx.config)
    if config is None:
        return []

    async def receive(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, f"the event is larger than {MAX_BODY} bytes")
        auth = authenticate(config, request.headers, body, ctx.clock.now())
        if auth is None:
            return JSONResponse({"error": "unauthorized"}, status_code=401,
                                headers={"www-authenticate": 'Bearer realm="enroll"'})
        try:
            event = parse_event(body)
        except MalformedInput as exc:
            return _error(400, exc.detail)
        try:
            revoked = await ctx.frontend.blocking.run(apply, ctx.authority, config, event,
                                                      auth)
        except Duplicate:
            return JSONResponse({"event": event.id, "duplicate": True, "revoked": []})
        except (Conflict, MalformedInput) as exc:
            return _error(409 if isinstance(exc, Conflict) else 400, exc.detail)
        log.info("device event %r (%s, %s) revoked %d certificate(s)", event.id[:64],
                 event.event, auth, len(revoked))
        return JSONResponse({"event": event.id, "revoked": [r.serial_hex for r in revoked]})

    return [Route("/events/device", receive, methods=["POST"])]


def _error(status: int, detail: str) -> Response:
    return JSONResponse({"error": detail}, status_code=status)
