"""Test a CSR against a profile without issuing: ``enroll profiles check``.

Runs what `Authority.submit` runs, in its order, with the same functions: the CSR's
signature, every profile rule (`enroll.profile_rules`, bound by the renewal rule), a
requested validity, the key blocklist, the migration policy, every policy plugin's vote
(`enroll.policy_votes`), the manual-approval setting and the CA's revocation state;
then builds the certificate the engine would sign (`enroll.certificate_build`).

Nothing is stored and nothing is signed: every step here only reads (the migration
policy is asked with `migration_rules.straggler`, which writes no audit event), and the
builder stops at the `IssuanceRequest` a CA backend would sign. Policy plugins are
called as the pipeline calls them; one with side effects of its own (a counter, a
webhook) has them here too. As in the pipeline, no plugin votes on a request its
profile's rules refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from enroll import certificate_build, key_blocklist, migration_rules, renewal, validity_rules
from enroll.authority import Authority, _refuse_if_ca_revoked
from enroll.config import Config
from enroll.crypto.keys import spki_sha256
from enroll.crypto.serials import new_serial
from enroll.csr import check_csr_signature
from enroll.errors import EnrollError
from enroll.model import EnrollmentRequest, IssuanceRequest, Requester, Vote
from enroll.names import names_as_strings
from enroll.policy_votes import PluginVote, collect, decide
from enroll.profile_rules import AcceptedRequest, RuleVerdict
from enroll.profiles import EKU_NAMES, Profile

ISSUE = "would issue"
APPROVAL = "would wait for approval"
REFUSE = "would refuse"
CHECK_REQUESTER = "cli:profiles-check"
CHECK_METHOD = "check"
_EKU_BY_OID = {oid: name for name, oid in EKU_NAMES.items()}
_KEY_USAGES = ("digital_signature", "content_commitment", "key_encipherment",
               "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")


@dataclass(frozen=True, slots=True)
class ProposedCertificate:
    """What the certificate would hold (the CA's own key identifier aside)."""

    subject: str
    sans: tuple[str, ...]
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    is_ca: bool
    not_before: dt.datetime
    not_after: dt.datetime
    ca: str
    identity: str
    key_type: str
    signature_hash: str | None
    extensions: tuple[str, ...]

    @property
    def validity_seconds(self) -> int:
        return int((self.not_after - self.not_before).total_seconds())

    def as_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "sans": list(self.sans),
                "key_usage": list(self.key_usage),
                "extended_key_usage": list(self.extended_key_usage), "is_ca": self.is_ca,
                "not_before": self.not_before.isoformat(timespec="seconds"),
                "not_after": self.not_after.isoformat(timespec="seconds"),
                "validity_seconds": self.validity_seconds, "ca": self.ca,
                "identity": self.identity, "key_type": self.key_type,
                "signature_hash": self.signature_hash, "extensions": list(self.extensions)}


@dataclass(frozen=True, slots=True)
class RequestCheck:
    """Every verdict on one request, the decision they make and the certificate."""

    profile: str
    protocol: str
    endpoint: str
    requester: str
    steps: tuple[RuleVerdict, ...]
    """The pipeline's checks in order, profile rules included."""
    votes: tuple[PluginVote, ...]
    """Empty when a step refused (no plugin votes then)."""
    decision: str
    """`ISSUE`, `APPROVAL` or `REFUSE`."""
    reason: str
    approvals_required: int
    certificate: ProposedCertificate | None
    """None when the profile's rules refused (nothing can be built)."""

    def as_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "protocol": self.protocol,
                "endpoint": self.endpoint, "requester": self.requester,
                "steps": [s.as_json() for s in self.steps],
                "votes": [v.as_json() for v in self.votes], "decision": self.decision,
                "reason": self.reason, "approvals_required": self.approvals_required,
                "certificate": None if self.certificate is None
                else self.certificate.as_json()}


def endpoint_ca(config: Config | None, protocol: str, endpoint: str) -> str | None:
    """The CA an endpoint binds (``[<protocol>.endpoints.<label>] ca``), if it names
    one: its door passes it with the request (`EnrollmentRequest.ca`)."""
    if config is None:
        return None
    table: Any = config.raw
    for key in (protocol, "endpoints", endpoint, "ca"):
        table = table.get(key) if isinstance(table, Mapping) else None
    return table if isinstance(table, str) else None


def request_for(config: Config | None, csr: x509.CertificateSigningRequest, profile: str,
                protocol: str = "est", endpoint: str = "default",
                requester: str = CHECK_REQUESTER) -> EnrollmentRequest:
    """The request a door would hand the core for `csr` (its endpoint's CA included);
    `requester` stands for whoever the door would have authenticated."""
    return EnrollmentRequest(csr=csr, profile=profile,
                             requester=Requester(requester[:512], CHECK_METHOD),
                             protocol=protocol, endpoint=endpoint,
                             ca=endpoint_ca(config, protocol, endpoint))


class _Steps:
    def __init__(self) -> None:
        self.done: list[RuleVerdict] = []
        self.refusal = ""

    def run(self, name: str, check: Callable[[], object]) -> None:
        try:
            note = check()
        except EnrollError as exc:
            self.refuse(name, exc.detail)
            return
        self.done.append(RuleVerdict(name, "passed", note if isinstance(note, str) else ""))

    def refuse(self, name: str, reason: str) -> None:
        self.done.append(RuleVerdict(name, "refused", reason))
        self.refusal = self.refusal or reason


def check_request(authority: Authority, request: EnrollmentRequest,
                  now: dt.datetime | None = None) -> RequestCheck:
    """What `authority.submit(request)` would decide and build, storing nothing.
    `NotFound` if the profile or its CA does not exist."""
    now = now or authority.clock.now()
    profile = authority.profile(request.profile)
    ca_name = request.ca or profile.ca
    backend = authority.cas.get(ca_name)
    steps = _Steps()
    steps.run("CSR signature", lambda: check_csr_signature(request.csr))
    accepted = _rules(authority, request, profile, now, steps)
    steps.run("requested validity", lambda: validity_rules.check_live(request, now))
    steps.run("key blocklist", lambda: key_blocklist.refuse_if_blocked(
        authority.db, spki_sha256(request.csr.public_key())))
    migration = migration_rules.straggler(profile, request.protocol, request.endpoint, now,
                                          authority.endpoint_migrations)
    if migration is not None and migration.mode == "refuse":
        steps.refuse("migration policy", migration.message)
    else:
        steps.done.append(RuleVerdict("migration policy", "passed", "" if migration is None
                                      else f"straggler of a migration to {migration.to} "
                                           f"({migration.mode})"))
    votes: tuple[PluginVote, ...] = ()
    decision, reason = REFUSE, steps.refusal
    if not steps.refusal:
        votes = collect(authority.pm, request, profile)
        made = decide(votes, profile)
        decision = {Vote.ALLOW: ISSUE, Vote.PENDING: APPROVAL, Vote.DENY: REFUSE}[made.vote]
        reason = made.reason or ("denied by policy" if made.vote is Vote.DENY else "")
    if decision != REFUSE:
        def ca_state() -> None:
            with authority.db.read() as tx:
                _refuse_if_ca_revoked(tx, backend)
        steps.run(f"CA {ca_name}", ca_state)
        if steps.refusal:
            decision, reason = REFUSE, steps.refusal
    built: ProposedCertificate | None = None
    if accepted is not None:
        try:
            issuance = certificate_build.build(authority.pm, profile, accepted, request,
                                               ca_name, backend.certificate, new_serial(),
                                               now, authority.endpoint_migrations)
        except EnrollError as exc:
            steps.refuse("certificate build", exc.detail)
            decision, reason = REFUSE, steps.refusal
        else:
            built = proposed(issuance, ca_name, accepted)
    return RequestCheck(profile=profile.name, protocol=request.protocol,
                        endpoint=request.endpoint, requester=request.requester.identity,
                        steps=tuple(steps.done), votes=votes, decision=decision,
                        reason=reason, approvals_required=profile.approvals_required,
                        certificate=built)


def _rules(authority: Authority, request: EnrollmentRequest, profile: Profile,
           now: dt.datetime, steps: _Steps) -> AcceptedRequest | None:
    """The profile's rules and the renewal rule's bindings, as `Authority._accept`
    runs them, each verdict added to `steps`."""
    verdicts: list[RuleVerdict] = []
    try:
        accepted = renewal.accept_bound(request, profile, authority.profiles,
                                        authority.certificate, now, verdicts)
    except EnrollError as exc:
        steps.done += [RuleVerdict(f"profile rule: {v.rule}", v.verdict, v.reason)
                       for v in verdicts]
        if not any(v.verdict == "refused" for v in verdicts):
            steps.refuse("renewal binding", exc.detail)
        else:
            steps.refusal = steps.refusal or exc.detail
        return None
    steps.done += [RuleVerdict(f"profile rule: {v.rule}", v.verdict, v.reason)
                   for v in verdicts]
    return accepted


def proposed(issuance: IssuanceRequest, ca: str,
             accepted: AcceptedRequest) -> ProposedCertificate:
    """The readable contents of what a CA backend would sign."""
    sans: list[str] = []
    usage: list[str] = []
    eku: list[str] = []
    is_ca = False
    for ext in issuance.extensions:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            sans = names_as_strings(list(value))
        elif isinstance(value, x509.KeyUsage):
            usage = key_usage_names(value)
        elif isinstance(value, x509.ExtendedKeyUsage):
            eku = [_EKU_BY_OID.get(oid, oid.dotted_string) for oid in value]
        elif isinstance(value, x509.BasicConstraints):
            is_ca = value.ca
    return ProposedCertificate(
        subject=issuance.subject.rfc4514_string(), sans=tuple(sans), key_usage=tuple(usage),
        extended_key_usage=tuple(eku), is_ca=is_ca, not_before=issuance.not_before,
        not_after=issuance.not_after, ca=ca, identity=accepted.identity,
        key_type=accepted.key_type, signature_hash=issuance.hash_name,
        extensions=tuple(getattr(e.oid, "_name", e.oid.dotted_string)
                         for e in issuance.extensions))


def key_usage_names(ku: x509.KeyUsage) -> list[str]:
    """The usages a KeyUsage extension asserts, by the profile's names."""
    names = [n for n in _KEY_USAGES if getattr(ku, n)]
    if ku.key_agreement:
        names += [n for n in ("encipher_only", "decipher_only") if getattr(ku, n)]
    return names
