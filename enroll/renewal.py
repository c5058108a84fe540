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

from cryptography import x509

from enroll.errors import Conflict, NotFound, Unauthorized
from enroll.model import Authorization, CertificateRecord, CertificateStatus
from enroll.names import names_as_strings
from enroll.profiles import Profile


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
