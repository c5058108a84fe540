"""The certificate a request gets, built from its profile: one function for the
pipeline (`Authority` signs what it returns) and the troubleshooting check
(`enroll.request_check` shows it, and signs nothing).

    templates.draft ─► requested validity ─► amend hooks ─► migration cap
                    ─► templates.finalise ─► IssuanceRequest (what a CA backend signs)
"""

from __future__ import annotations

import datetime as dt

import pluggy
from cryptography import x509

from enroll import migration_rules, templates, validity_rules
from enroll.model import EnrollmentRequest, IssuanceRequest
from enroll.profile_rules import AcceptedRequest
from enroll.profiles import Profile


def build(pm: pluggy.PluginManager, profile: Profile, accepted: AcceptedRequest,
          request: EnrollmentRequest, ca_name: str, ca_certificate: x509.Certificate,
          serial: int, now: dt.datetime,
          endpoint_migrations: migration_rules.EndpointPolicies) -> IssuanceRequest:
    """The `IssuanceRequest` for `request` (accepted by the profile's rules) under CA
    `ca_name` at `now`. Raises what the steps raise (`BadCSR` for an expired CA,
    `MalformedInput` for a requested validity that can no longer be honoured, whatever
    an amend plugin raises)."""
    public_key = request.csr.public_key()
    draft = templates.draft(profile, accepted, public_key, ca_name, ca_certificate, now)
    validity_rules.apply(draft, profile, request, now)
    pm.hook.enroll_amend_certificate(draft=draft, request=request, profile=profile)
    migration_rules.cap_validity(draft, profile, request.protocol, request.endpoint, now,
                                 endpoint_migrations)
    return templates.finalise(profile, draft, public_key, serial, ca_certificate)
