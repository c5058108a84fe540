"""Forward an MDM webhook to enroll's off-boarding receiver, signed.

    EVENTS_SECRET=... python forward.py intune intune-managed-device-deleted.json \\
        --url https://pki.example.com/events/device --cacert tls-ca.pem

reads an Intune (Microsoft Graph change notification) or Jamf Pro webhook payload from a
file (``-``: stdin), turns each off-boarding it reports into enroll's event
(``{"id", "event", "device_id"}``) and POSTs it with the HMAC enroll checks
(``X-Enroll-Timestamp``, ``X-Enroll-Signature: sha256=hex(HMAC(secret,
"<timestamp>.<body>"))``). Prints one line per event with enroll's answer; exits 1 if
any was refused. Needs only httpx. The mapping is in `from_intune` and `from_jamf`; see
README.md for the fields and the MDM settings that make the device ids match.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

# Intune: Graph notifies a deleted managedDevice (retire, wipe or delete all end there).
INTUNE_CHANGES = {"deleted": "device.retired"}
# Jamf Pro webhook events that mean the device left management.
JAMF_EVENTS = {"MobileDeviceUnEnrolled": "device.retired"}
_RESOURCE = re.compile(r"managedDevices\('([0-9A-Za-z-]{1,64})'\)")


def _id(*parts: object) -> str:
    """A stable event id: the same notification delivered twice maps to one id, so
    enroll applies it once."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:40]


def from_intune(payload: dict[str, Any], client_state: str | None = None
                ) -> list[dict[str, str]]:
    """Graph change notifications -> enroll events. Maps ``changeType`` (``deleted``)
    and the managed device's id (``resourceData.id``, else parsed from ``resource``),
    which is Intune's ``{{DeviceId}}``; a notification whose ``clientState`` is not
    `client_state` (when given) is skipped, as Graph's documentation asks."""
    events = []
    for note in payload.get("value", []):
        if client_state is not None and not hmac.compare_digest(
                str(note.get("clientState", "")), client_state):
            print("skipped: clientState does not match", file=sys.stderr)
            continue
        event = INTUNE_CHANGES.get(note.get("changeType", ""))
        resource = str(note.get("resource", ""))
        if event is None or "managedDevices" not in resource:
            continue
        match = _RESOURCE.search(resource)
        device = (note.get("resourceData") or {}).get("id") or (match and match.group(1))
        if device:
            events.append({"id": "intune:" + _id(note.get("tenantId"),
                                                  note.get("subscriptionId"), device,
                                                  note.get("changeType")),
                           "event": event, "device_id": str(device)})
    return events


def from_jamf(payload: dict[str, Any], device_field: str = "serialNumber"
              ) -> list[dict[str, str]]:
    """A Jamf Pro webhook (JSON) -> enroll events. Maps ``webhook.webhookEvent``
    (``MobileDeviceUnEnrolled``) and the device's ``event.serialNumber`` (or
    `device_field`, e.g. ``udid``), which is Jamf's ``$SERIALNUMBER`` / ``$UDID``."""
    hook, body = payload.get("webhook") or {}, payload.get("event") or {}
    event = JAMF_EVENTS.get(hook.get("webhookEvent", ""))
    device = body.get(device_field)
    if event is None or not device:
        return []
    return [{"id": "jamf:" + _id(hook.get("id"), hook.get("eventTimestamp"),
                                 body.get("udid"), hook.get("webhookEvent")),
             "event": event, "device_id": str(device)}]


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if now is None else now))
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    return {"content-type": "application/json", "x-enroll-timestamp": stamp,
            "x-enroll-signature": "sha256=" + mac.hexdigest()}


def forward(event: dict[str, str], url: str, secret: str,
            client: httpx.Client) -> httpx.Response:
    body = json.dumps(event, separators=(",", ":")).encode()
    return client.post(url, content=body, headers=signed_headers(secret, body))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=["intune", "jamf"])
    parser.add_argument("payload", help="the webhook's JSON body (a file, or - for stdin)")
    parser.add_argument("--url", required=True, help="https://<host><prefix>/events/device")
    parser.add_argument("--cacert", help="CA bundle for enroll's HTTPS listener")
    parser.add_argument("--client-state", help="Intune: the subscription's clientState")
    parser.add_argument("--jamf-device-field", default="serialNumber")
    args = parser.parse_args(argv)
    secret = os.environ.get("EVENTS_SECRET")
    if not secret:
        parser.error("set EVENTS_SECRET to enroll's [events] hmac_secret")
    raw = sys.stdin.read() if args.payload == "-" else Path(args.payload).read_text()
    payload = json.loads(raw)
    events = from_intune(payload, args.client_state) if args.source == "intune" \
        else from_jamf(payload, args.jamf_device_field)
    if not events:
        print("nothing to forward: no off-boarding in this payload")
        return 0
    failed = False
    with httpx.Client(verify=args.cacert or True, timeout=30, trust_env=False) as client:
        for event in events:
            r = forward(event, args.url, secret, client)
            print(f"{event['event']} {event['device_id']}: {r.status_code} {r.text}")
            failed = failed or r.status_code != 200
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
