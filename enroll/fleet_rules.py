"""What the core records about a request's place in the fleet: the device id and why it
links to the certificate it replaces (the lineage across protocols)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from enroll.model import EnrollmentRequest
from enroll.names import names_as_strings
from enroll.profile_rules import AcceptedRequest
from enroll.profiles import Profile
from enroll.store import lineage
from enroll.store.db import Database

MAX_DEVICE_ID = 256


def link_reason(request: EnrollmentRequest) -> str | None:
    """Why `request.replaces` names the certificate it renews (`enroll.model.LINK_REASONS`)."""
    if request.replaces is None:
        return None
    if request.link is not None:
        return request.link
    return "credential" if request.credential == request.replaces else "replaces"


def renewal_link(db: Database, profile: Profile, profiles: dict[str, Profile],
                 request: EnrollmentRequest, identity: str,
                 now: dt.datetime) -> tuple[str | None, str | None]:
    """(replaces, link) to record on the request. What the client named wins; else, on a
    profile that links renewals by identity, the identity's live certificate on the
    same profile line, linked ``identity`` (``attested`` when the door says the device
    attested the identity). That link is lineage, not a credential: it
    was chosen after the renewal rule ran (`enroll.renewal`), so it bounds nothing, and
    it never fails the issuance (`enroll.store.lineage.relink`)."""
    if request.replaces is not None:
        return request.replaces, link_reason(request)
    if profile.fleet.link_renewals != "identity" or not identity:
        return None, None
    with db.read() as tx:
        live = lineage.live_serial(tx, identity, now)
    if live is None:
        return None, None
    serial, old_profile = live
    old = profiles.get(old_profile)
    if old_profile != profile.name and (old is None or old.successor != profile.name):
        # Another purpose's certificate with the same identity is not this one's
        # predecessor: superseding it would revoke it.
        return None, None
    # A door that proved the identity itself (ACME device-attest-01) names that reason.
    return serial, "attested" if request.link == "attested" else "identity"


def device_id_of(profile: Profile, request: EnrollmentRequest,
                 accepted: AcceptedRequest) -> str | None:
    """The door's or a plugin's device id, else what the profile's ``device_id`` source
    finds in the accepted certificate (its subject serialNumber or CN, its first URI
    name, or the requester)."""
    if request.device_id:
        return request.device_id[:MAX_DEVICE_ID]
    source = profile.fleet.device_id
    value: str | None = None
    if source == "requester":
        value = request.requester.identity
    elif source in ("subject.serialNumber", "subject.CN"):
        oid = x509.NameOID.SERIAL_NUMBER if source == "subject.serialNumber" \
            else x509.NameOID.COMMON_NAME
        attrs = accepted.subject.get_attributes_for_oid(oid)
        value = str(attrs[0].value) if attrs else None
    elif source == "san.uri":
        uris = [n for n in names_as_strings(accepted.names) if n.startswith("uri:")]
        value = uris[0][4:] if uris else None
    return value[:MAX_DEVICE_ID] if value else None
