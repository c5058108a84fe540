"""The ``[admin]`` configuration section, validated once at start-up.

    [admin]
    api = true                      # /api/v1 on the HTTPS listener
    console = true                  # /ui on the HTTPS listener
    session = "8h"                  # a console session's life (signed cookie)
    step_up = "5m"                  # how long a re-entered second factor counts
    client_ca = "admin-clients"     # optional: an enroll CA whose certificates sign in
    client_roles = { "ops.example" = "admin", "noc.example" = "viewer" }
                                    # client certificate CN (or SAN email) -> role
    rate_limits = { sign_in_failures_per_user = "5/15m",
                    sign_in_failures_per_address = "30/15m" }
                                    # failed console sign-ins (password or code)

Without ``client_ca`` the API takes tokens only (`enroll admin token new`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from enroll.config import Config
from enroll.config_values import as_duration
from enroll.errors import ConfigError
from enroll.rate_limits import Rate, rates

from .roles import Role
from .roles import parse as parse_role

SECTION = "admin"
RATE_LIMITS: Mapping[str, Rate | None] = {
    "sign_in_failures_per_user": Rate(5, 15 * 60),
    "sign_in_failures_per_address": Rate(30, 15 * 60),
}
"""Failed console sign-ins (a wrong password or second-factor code, or an unknown
user) counted per user name and per source address: at the rate, every sign-in of that
name (or from that address) is refused until the window slides, right password or not."""


@dataclass(frozen=True, slots=True)
class AdminSettings:
    api: bool = True
    console: bool = True
    session_seconds: int = 8 * 3600
    step_up_seconds: int = 300
    client_ca: str | None = None
    client_roles: Mapping[str, Role] = field(default_factory=dict)
    rate_limits: Mapping[str, Rate | None] = field(default_factory=lambda: dict(RATE_LIMITS))


def _flag(table: Mapping[str, Any], key: str, default: bool) -> bool:
    value = table.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(f"admin.{key}", f"expected true or false, got {value!r}")
    return value


_KEYS = {"api", "console", "session", "step_up", "client_ca", "client_roles", "rate_limits"}


def parse(config: Config) -> AdminSettings:
    table = config.section(SECTION)
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(f"admin.{sorted(unknown)[0]}",
                          f"unknown key (known: {', '.join(sorted(_KEYS))})")
    client_ca = table.get("client_ca")
    if client_ca is not None:
        if not isinstance(client_ca, str) or client_ca not in config.cas:
            raise ConfigError("admin.client_ca", f"no CA named {client_ca!r} in [cas] "
                              f"(have: {', '.join(config.cas) or 'none'})")
    raw_roles = table.get("client_roles", {})
    if not isinstance(raw_roles, Mapping):
        raise ConfigError("admin.client_roles", "expected a table of name = role")
    roles = {str(name): parse_role(str(role), f"admin.client_roles.{name}")
             for name, role in raw_roles.items()}
    if roles and client_ca is None:
        raise ConfigError("admin.client_roles", "client_roles needs admin.client_ca")
    return AdminSettings(
        api=_flag(table, "api", True), console=_flag(table, "console", True),
        session_seconds=as_duration(table.get("session", "8h"), "admin.session",
                                    minimum=300, maximum=7 * 86400),
        step_up_seconds=as_duration(table.get("step_up", "5m"), "admin.step_up",
                                    minimum=30, maximum=3600),
        client_ca=client_ca, client_roles=roles,
        rate_limits=rates(table.get("rate_limits"), "admin.rate_limits", RATE_LIMITS))
