"""The ``[notify]`` configuration section, checked at start-up of every command.

    [notify]
    webhook_url = "https://hooks.example.net/enroll"   # POST one JSON document per event
    webhook_secret = "…"          # optional: X-Enroll-Signature: sha256=<HMAC of the body>
    webhook_timeout = "5s"
    smtp_host = "mail.example.net"                      # optional: an e-mail per event
    smtp_port = 587
    smtp_starttls = true
    smtp_user = "enroll"
    smtp_password = "…"
    smtp_from = "pki@example.net"
    smtp_to = ["pki-team@example.net"]
    smtp_timeout = "10s"

Either channel, or both; with neither the section does nothing. Secrets may come from
``ENROLL_NOTIFY_WEBHOOK_SECRET`` / ``ENROLL_NOTIFY_SMTP_PASSWORD`` and are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from enroll.config import Config
from enroll.config_values import (
    Secret,
    as_bool,
    as_duration,
    as_int,
    as_str,
    as_str_list,
    check_keys,
)
from enroll.errors import ConfigError

SECTION = "notify"
_KEYS = {"webhook_url", "webhook_secret", "webhook_timeout", "smtp_host", "smtp_port",
         "smtp_starttls", "smtp_user", "smtp_password", "smtp_from", "smtp_to",
         "smtp_timeout"}
MAX_TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    secret: Secret | None
    timeout: float


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str
    port: int
    starttls: bool
    user: str | None
    password: Secret | None
    sender: str
    recipients: tuple[str, ...]
    timeout: float


@dataclass(frozen=True, slots=True)
class NotifySettings:
    webhook: Webhook | None
    smtp: Smtp | None


def parse(config: Config) -> NotifySettings | None:
    """The section's settings; None when there is no ``[notify]``."""
    if SECTION not in config.sections:
        return None
    return parse_table(config.section(SECTION))


def parse_table(table: Mapping[str, Any]) -> NotifySettings:
    check_keys(table, _KEYS, SECTION)
    return NotifySettings(webhook=_webhook(table), smtp=_smtp(table))


def _key(name: str) -> str:
    return f"{SECTION}.{name}"


def _secret(table: Mapping[str, Any], name: str) -> Secret | None:
    raw = table.get(name)
    if raw is None or raw == "":
        return None
    return raw if isinstance(raw, Secret) else Secret(as_str(raw, _key(name)))


def _webhook(table: Mapping[str, Any]) -> Webhook | None:
    url = table.get("webhook_url")
    if url is None or url == "":
        for name in ("webhook_secret", "webhook_timeout"):
            if name in table:
                raise ConfigError(_key(name), "set webhook_url too")
        return None
    url = as_str(url, _key("webhook_url"))
    if not url.startswith(("https://", "http://")) or len(url) > 2048:
        raise ConfigError(_key("webhook_url"), "expected an http:// or https:// URL")
    return Webhook(url=url, secret=_secret(table, "webhook_secret"),
                   timeout=float(as_duration(table.get("webhook_timeout", "5s"),
                                             _key("webhook_timeout"), minimum=1,
                                             maximum=MAX_TIMEOUT)))


def _smtp(table: Mapping[str, Any]) -> Smtp | None:
    host = table.get("smtp_host")
    if host is None or host == "":
        others = sorted(k for k in table if k.startswith("smtp_"))
        if others:
            raise ConfigError(_key(others[0]), "set smtp_host too")
        return None
    sender = as_str(table.get("smtp_from", ""), _key("smtp_from"))
    if "@" not in sender:
        raise ConfigError(_key("smtp_from"), "expected the sender's address")
    recipients = as_str_list(table.get("smtp_to", []), _key("smtp_to"))
    if not recipients or any("@" not in r for r in recipients):
        raise ConfigError(_key("smtp_to"), "expected a list of recipients' addresses")
    user = table.get("smtp_user")
    password = _secret(table, "smtp_password")
    if (user is None) != (password is None):
        raise ConfigError(_key("smtp_user" if user is None else "smtp_password"),
                          "smtp_user and smtp_password go together")
    return Smtp(host=as_str(host, _key("smtp_host")),
                port=as_int(table.get("smtp_port", 25), _key("smtp_port"), minimum=1,
                            maximum=65535),
                starttls=as_bool(table.get("smtp_starttls", False), _key("smtp_starttls")),
                user=as_str(user, _key("smtp_user")) if user is not None else None,
                password=password, sender=sender, recipients=recipients,
                timeout=float(as_duration(table.get("smtp_timeout", "10s"),
                                          _key("smtp_timeout"), minimum=1,
                                          maximum=MAX_TIMEOUT)))
