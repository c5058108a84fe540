"""A migration policy at issuance: after its date, a request over any other door than
the one the fleet moves to is a *straggler's*, and is refused, shortened or only audited
(`enroll.profile_fleet.Migration`). A policy is a profile's (``[profiles.X.migration]``)
or a source endpoint's (``[<protocol>.endpoints.<label>.migration]``): every request
through that endpoint, whatever its profile. The endpoint's takes precedence: where an
endpoint has a policy, the profile's is not consulted for requests through it.

The rule lives here once; every door only maps `MigrationRequired` to its own refusal
(SCEP FAILURE badRequest with the message in failInfoText, EST 403 with it as the
text/plain body, ACME ``unauthorized``). Each straggler leaves one ``migration.straggler``
audit event naming its identity: for a refusal in a transaction of its own (nothing else
is stored), otherwise in the transaction that stores the request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from enroll.errors import MigrationRequired
from enroll.model import CertificateDraft, EnrollmentRequest
from enroll.profile_fleet import Migration
from enroll.profiles import Profile
from enroll.store import queries
from enroll.store.db import Database
from enroll.store.transaction import Tx

AUDIT_TYPE = "migration.straggler"
DOORS = ("acme", "est", "scep")
"""The enrollment protocols a device comes through. enroll's own issuance under a
profile (the SCEP RA's certificate, ``scep-ra``; the HTTPS listener's, ``core``) is never
a straggler's: a policy on the RA's profile must not stop SCEP itself."""


EndpointPolicies = Mapping[tuple[str, str], Migration]
"""(protocol, endpoint label) -> that source endpoint's policy (`enroll.config.Config.
endpoint_migrations`)."""


def policy_of(profile: Profile, protocol: str, endpoint: str,
              endpoints: EndpointPolicies) -> tuple[Migration | None, str]:
    """The policy that governs a request over (`protocol`, `endpoint`) under `profile`,
    and where it comes from (``endpoint`` or ``profile``)."""
    by_endpoint = endpoints.get((protocol, endpoint))
    if by_endpoint is not None:
        return by_endpoint, "endpoint"
    return profile.fleet.migration, "profile"


def straggler(profile: Profile, protocol: str, endpoint: str, now: dt.datetime,
              endpoints: EndpointPolicies) -> Migration | None:
    """The migration if a request over (`protocol`, `endpoint`) at `now` is a
    straggler's (None before the date, over the target door, or without a policy)."""
    migration, _source = policy_of(profile, protocol, endpoint, endpoints)
    if migration is None or protocol not in DOORS \
            or not migration.applies(protocol, endpoint, now):
        return None
    return migration


def enforce(db: Database, profile: Profile, request: EnrollmentRequest, identity: str,
            now: dt.datetime, endpoints: EndpointPolicies) -> Migration | None:
    """Refuse a straggler in ``refuse`` mode (its audit event committed first, alone);
    otherwise the migration that applies (to `record` with the request) or None."""
    migration = straggler(profile, request.protocol, request.endpoint, now, endpoints)
    if migration is not None and migration.mode == "refuse":
        with db.write() as tx:
            record(tx, now, profile, request, identity, migration,
                   endpoints=endpoints)
        raise MigrationRequired(migration.message, to=migration.to,
                                endpoint=migration.endpoint)
    return migration


def record(tx: Tx, now: dt.datetime, profile: Profile, request: EnrollmentRequest,
           identity: str, migration: Migration, request_id: str | None = None, *,
           endpoints: EndpointPolicies) -> None:
    """One ``migration.straggler`` event: who came through the old door, and what the
    policy (the ``endpoint``'s or the ``profile``'s) did about it."""
    _policy, source = policy_of(profile, request.protocol, request.endpoint, endpoints)
    queries.add_audit(tx, at=now, type=AUDIT_TYPE, actor=request.requester.identity,
                      request_id=request_id,
                      details={"profile": profile.name, "protocol": request.protocol,
                               "endpoint": request.endpoint, "identity": identity,
                               "mode": migration.mode, "to": migration.to,
                               "to_endpoint": migration.endpoint,
                               "replaces": request.replaces, "policy": source})


def cap_validity(draft: CertificateDraft, profile: Profile, protocol: str, endpoint: str,
                 now: dt.datetime, endpoints: EndpointPolicies) -> None:
    """In ``short`` mode a straggler's certificate lives at most ``short_validity``
    (applied after the amend hooks, so no plugin lengthens it). Decided when signing,
    so a request approved after the date is shortened too."""
    migration = straggler(profile, protocol, endpoint, now, endpoints)
    if migration is not None and migration.mode == "short":
        draft.not_after = min(draft.not_after,
                              now + dt.timedelta(seconds=migration.short_validity))
