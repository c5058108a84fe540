"""Built-in notifier: the lifecycle events (``certificate.expiring``, ``certificate.expired``,
``migration.deadline``) to a webhook and/or by e-mail, as ``[notify]`` configures.

It listens to the core's lifecycle hooks like any third-party plugin would. Each event is
sent once (the core gives each notice at most once) and synchronously from the
scheduler's lifecycle job, bounded by the channel's timeout: a failure (unreachable
host, non-2xx answer, SMTP refusal) is logged without the secret and never raised, so
one dead channel neither stops the other nor the job; the notice is not retried.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from enroll.config import Config
from enroll.hookspecs import hookimpl
from enroll.model import CertificateRecord
from enroll.profile_fleet import Migration
from enroll.profiles import Profile

from . import messages, settings
from .settings import NotifySettings, Smtp, Webhook

log = logging.getLogger("enroll.notifier")


@hookimpl
def enroll_config_sections() -> Mapping[str, Any]:
    return {settings.SECTION: settings.parse}


@hookimpl
def enroll_certificate_expiring(certificate: CertificateRecord, remaining: int,
                                threshold: int, config: Config) -> None:
    now = dt.datetime.now(dt.UTC)
    notify(settings.parse(config), messages.certificate_event(
        "certificate.expiring", certificate, now, remaining_seconds=remaining,
        threshold_seconds=threshold), now)


@hookimpl
def enroll_certificate_expired(certificate: CertificateRecord, config: Config) -> None:
    now = dt.datetime.now(dt.UTC)
    notify(settings.parse(config),
           messages.certificate_event("certificate.expired", certificate, now), now)


@hookimpl
def enroll_migration_deadline(profile: Profile, migration: Migration, stragglers: int,
                              config: Config) -> None:
    now = dt.datetime.now(dt.UTC)
    notify(settings.parse(config),
           messages.deadline_event(profile.name, migration, stragglers, now), now)


def notify(configured: NotifySettings | None, event: dict[str, Any],
           now: dt.datetime) -> None:
    """Send `event` on every configured channel; failures are logged, never raised."""
    if configured is None:
        return
    if configured.webhook is not None:
        post(configured.webhook, event)
    if configured.smtp is not None:
        mail(configured.smtp, event, now)


def post(webhook: Webhook, event: dict[str, Any]) -> bool:
    """POST `event` as JSON, signed when a secret is set; True on a 2xx answer."""
    payload = messages.body(event)
    headers = {"content-type": "application/json", "user-agent": "enroll-notifier",
               "x-enroll-event": str(event["event"])}
    if webhook.secret is not None:
        headers[messages.SIGNATURE_HEADER] = messages.signature(webhook.secret.reveal(),
                                                                payload)
    where = httpx.URL(webhook.url).host  # never the path or query: they may hold a token
    try:
        with httpx.Client(timeout=webhook.timeout, follow_redirects=False,
                          trust_env=False) as client:
            response = client.post(webhook.url, content=payload, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("notify: webhook %s unreachable for %s: %s", where, event["event"],
                    type(exc).__name__)
        return False
    if not 200 <= response.status_code < 300:
        log.warning("notify: webhook %s answered HTTP %d for %s", where,
                    response.status_code, event["event"])
        return False
    return True


def mail(smtp: Smtp, event: dict[str, Any], now: dt.datetime) -> bool:
    """Send `event` by e-mail; True when the server accepted it."""
    message = messages.email(event, smtp.sender, smtp.recipients, now)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as server:
            if smtp.starttls:
                server.starttls(context=ssl.create_default_context())
            if smtp.user is not None and smtp.password is not None:
                server.login(smtp.user, smtp.password.reveal())
            server.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("notify: mail via %s:%d failed for %s: %s", smtp.host, smtp.port,
                    event["event"], type(exc).__name__)
        return False
    return True
