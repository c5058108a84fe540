"""An enroll policy plugin: deny every certificate with a name outside one domain.

Load it by import path in enroll.toml:

    plugins = ["enroll_policy_domain"]
    [policy_domain]
    domain = "corp.example"

(with this folder on PYTHONPATH), or package it with an entry point in the ``enroll``
group. It votes on every request, whichever protocol it came through.
"""

from __future__ import annotations

from cryptography import x509

from enroll.hookspecs import hookimpl
from enroll.model import Decision, EnrollmentRequest
from enroll.profiles import Profile

DOMAIN = "corp.example"


def _names(request: EnrollmentRequest) -> list[str]:
    names = [a.value for a in request.csr.subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME) if isinstance(a.value, str)]
    try:
        san = request.csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    return names


@hookimpl
def enroll_policy_vote(request: EnrollmentRequest, profile: Profile) -> Decision | None:
    for name in _names(request):
        lowered = name.lower().rstrip(".")
        if lowered != DOMAIN and not lowered.endswith("." + DOMAIN):
            return Decision.deny(f"{name!r} is outside {DOMAIN}")
    return Decision.allow()
