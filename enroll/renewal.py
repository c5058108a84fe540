"""The one renewal rule, for every door (SCEP RenewalReq, EST re-enrolment and
client-certificate enrolment, ACME ``replaces``, any later migration path).

A request bound to a certificate of this engine (`EnrollmentRequest.credential`, the
certificate that authenticated it, and/or `replaces`, the one it renews) gets a
certificate only if that certificate

- is this engine's, live (not revoked; within its expiry plus the endpoint's grace) and,
  when it is being replaced, not already replaced;
- was issued under the request's profile, or under a profile whose ``successor`` the
  request's profile is;
- has the same identity as the new certificate, which adds no name: the new names and
  subject values must be among the old certificate's (`authorization_of`).

When the front-end proved the names itself (ACME: the order's validated identifiers,
`EnrollmentRequest.authorized`), the replaced certificate is not a credential: its
names are not a limit and it need not be live, but it must share at least one name with
the new one (as RFC 9773 servers check) and keep the profile line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cryptography import x509

from enroll import profile_rules
from enroll.errors import Conflict, EnrollError, NotFound, Unauthorized
from enroll.model import Authorization, CertificateRecord, CertificateStatus, EnrollmentRequest
from enroll.names import names_as_strings
from enroll.profile_rules import AcceptedRequest
from enroll.profiles import REQUESTER, Profile


def authorization_of(record: CertificateRecord) -> Authorization:
    """What a certificate of this engine vouches for: its own names and subject values."""
    return certificate_authorization(record.certificate,
                                     f"the names of certificate {record.serial_hex}")


def certificate_authorization(cert: x509.Certificate, source: str) -> Authorization:
    """What any certificate vouches for (an external device certificate that
    authenticated a request, for instance): its own names and subject values."""
    try:
        names = names_as_strings(list(cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value))
    except x509.ExtensionNotFound:
        names = []
    subject = frozenset((a.oid.dotted_string, str(a.value)) for a in cert.subject)
    return Authorization(names=frozenset(names), subject=subject, source=source)


def check_live(record: CertificateRecord, now: dt.datetime, grace: int) -> None:
    if record.status is not CertificateStatus.VALID:
        raise Unauthorized(f"certificate {record.serial_hex} is revoked")
    if now > record.not_after + dt.timedelta(seconds=grace):
        raise Unauthorized(f"certificate {record.serial_hex} has expired")
    if now < record.not_before:
        raise Unauthorized(f"certificate {record.serial_hex} is not yet valid")


def check_profile(record: CertificateRecord, profile: Profile,
                  profiles: dict[str, Profile]) -> None:
    """The new certificate stays on the old one's profile line."""
    if record.profile == profile.name:
        return
    old = profiles.get(record.profile)
    if old is not None and old.successor == profile.name:
        return
    raise Unauthorized(f"certificate {record.serial_hex} was issued under profile "
                       f"{record.profile!r}; it cannot be used for profile {profile.name!r}")


def check_not_replaced(record: CertificateRecord) -> None:
    if record.superseded_by is not None:
        raise Conflict(f"certificate {record.serial_hex} was already replaced by "
                       f"{record.superseded_by}")


def check_identity(record: CertificateRecord, old_identity: str, new_identity: str,
                   new_names: list[str], *, proven: bool) -> None:
    """Same identity; with names proven by the front-end, at least one name in common."""
    if proven:
        old = {n.lower() for n in record.sans}
        if old and not old & {n.lower() for n in new_names}:
            raise Unauthorized(f"the new certificate shares no name with certificate "
                               f"{record.serial_hex}, which it replaces")
        return
    if old_identity.lower() != new_identity.lower():
        raise Unauthorized(f"the new certificate's identity {new_identity[:96]!r} is not "
                           f"that of certificate {record.serial_hex} ({old_identity[:96]!r})")


def bound_record(record: CertificateRecord | None, serial: str) -> CertificateRecord:
    if record is None:
        raise NotFound(f"certificate {serial} was not issued here")
    return record


def accept_bound(request: EnrollmentRequest, profile: Profile, profiles: dict[str, Profile],
                 certificate: Callable[[str], CertificateRecord | None],
                 now: dt.datetime,
                 verdicts: list[profile_rules.RuleVerdict] | None = None) -> AcceptedRequest:
    """The profile's rules (`enroll.profile_rules.accept`), bound by what the front-end
    proved (`request.authorized`) and by the certificates the request was authenticated
    with (`credential`) or renews (`replaces`), as the module docstring says.
    `verdicts` collects each profile rule's verdict (`profile_rules.accept`)."""
    proven = request.authorized is not None
    bound: list[CertificateRecord] = []
    authorized = request.authorized
    credential: CertificateRecord | None = None
    if request.credential is not None:
        credential = bound_record(certificate(request.credential), request.credential)
        check_live(credential, now, request.renewal_grace)
        check_profile(credential, profile, profiles)
        bound.append(credential)
        authorized = authorized or authorization_of(credential)
    if request.replaces is not None:
        # A renewal's credential is the certificate it replaces (SCEP RenewalReq, EST
        # re-enrolment): read and checked once.
        replaced = credential if credential is not None \
            and request.replaces == credential.serial_hex \
            else bound_record(certificate(request.replaces), request.replaces)
        if replaced is not credential:
            if not proven:
                # Without names proven by the front-end, the replaced certificate is the
                # credential: live, and it bounds the names.
                if credential is not None:
                    raise Unauthorized("a renewal must be authenticated by the "
                                       "certificate it replaces")
                check_live(replaced, now, request.renewal_grace)
                authorized = authorized or authorization_of(replaced)
            check_profile(replaced, profile, profiles)
            bound.append(replaced)
        check_not_replaced(replaced)
    requester = request.requester.identity
    kept = bound[0].identity if bound else None
    if profile.identity == REQUESTER and kept and kept.startswith(f"{REQUESTER}:"):
        requester = kept.partition(":")[2]  # a renewal keeps the original requester
    accepted = profile_rules.accept(profile, request.csr, authorized, requester, verdicts)
    names = names_as_strings(accepted.names)
    for record in bound:
        check_identity(record, identity_of_record(record, profiles), accepted.identity,
                       names, proven=proven)
    return accepted


def identity_of_record(record: CertificateRecord, profiles: dict[str, Profile]) -> str:
    """The recorded identity, or for certificates stored before identities were
    recorded, the one their profile gives them now ("" if it cannot)."""
    if record.identity is not None:
        return record.identity
    profile = profiles.get(record.profile)
    if profile is None:
        return ""
    try:
        return profile_rules.identity_of_certificate(profile, record.certificate,
                                                     record.requester)
    except EnrollError:
        return ""
