"""Who is calling: a `Principal` from an API token, a console session or an admin client
certificate, and the one role check every route makes.

The principal's ``name`` is what the audit trail and the approval records carry:
``token:<name>``, ``user:<name>`` or ``cert:<subject CN>``. Four-eyes approval counts
distinct names, so two tokens of one person are still two approvers; give each person
one credential.
"""

from __future__ import annotations

from dataclasses import dataclass

from enroll.errors import EnrollError

from .roles import Action, Role, allows


class Forbidden(EnrollError):
    """Authenticated, but the role does not allow the action (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    kind: str
    """``token``, ``user`` or ``cert``."""

    def require(self, action: Action) -> None:
        if not allows(self.role, action):
            raise Forbidden(f"the {self.role.value} role may not {action.value}")
