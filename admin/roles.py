"""Who may do what: four roles, one table.

- ``viewer`` reads everything an operator can see (no secret is ever readable);
- ``approver`` also approves and rejects pending requests;
- ``revoker`` also revokes certificates;
- ``admin`` may do all of that and manage credentials (ACME EAB keys, SCEP one-time
  challenges, EST users) and the CAs.

Roles are not ranked: an approver cannot revoke and a revoker cannot approve, so one
stolen token does not do both. Every route names the `Action` it needs; `allows` is the
only check.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    VIEWER = "viewer"
    APPROVER = "approver"
    REVOKER = "revoker"
    ADMIN = "admin"


class Action(enum.StrEnum):
    READ = "read"
    APPROVE = "approve"
    REVOKE = "revoke"
    MANAGE = "manage"
    """Credentials of the doors (EAB keys, SCEP challenges, EST users)."""
    CA_ADMIN = "ca-admin"
    """Revoke a CA, rotate the passphrase: the console asks the second factor again."""


_GRANTS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.READ}),
    Role.APPROVER: frozenset({Action.READ, Action.APPROVE}),
    Role.REVOKER: frozenset({Action.READ, Action.REVOKE}),
    Role.ADMIN: frozenset(Action),
}


def allows(role: Role, action: Action) -> bool:
    return action in _GRANTS[role]


def parse(value: str, key: str = "--role") -> Role:
    from enroll.errors import ConfigError

    try:
        return Role(value)
    except ValueError:
        raise ConfigError(key, f"unknown role {value!r} (one of: "
                          f"{', '.join(r.value for r in Role)})") from None
