"""The troubleshooting commands: thin printers of `enroll.request_check`,
`enroll.profile_drift` and `enroll.request_trail`.

    enroll profiles check --profile X req.csr [--protocol P] [--endpoint E]
                          [--requester R] [--json]     # exit 0: issue / approval, 3: refuse
    enroll certs check SERIAL [--json]                 # exit 0: as the profile builds, 3: differs
    enroll certs check --profile X [--all] [--limit N] [--json]
    enroll requests show ID [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from enroll import profile_drift, request_check, request_trail
from enroll.cli.commands import Opener, _out, _serial
from enroll.cli.tables import render
from enroll.csr import MAX_CSR_BYTES, load_csr
from enroll.errors import MalformedInput, NotFound

DIFFERS = 3
"""Exit code: the request would be refused, or a certificate differs from its profile."""
PROTOCOLS = ("scep", "est", "acme")


def _group(sub: argparse._SubParsersAction[Any], name: str) -> Any:
    return next(a for a in sub.choices[name]._actions
                if isinstance(a, argparse._SubParsersAction))


def register(sub: argparse._SubParsersAction[Any]) -> None:
    profiles = sub.add_parser("profiles", help="certificate profiles").add_subparsers(
        dest="profiles_command")
    p = profiles.add_parser("check", help="run a CSR through a profile's rules and the "
                                          "policy votes, and show the certificate it would "
                                          "get; stores and signs nothing")
    p.add_argument("csr", type=Path, help="the CSR file (PEM or DER)")
    p.add_argument("--profile", required=True)
    p.add_argument("--protocol", choices=PROTOCOLS, default="est",
                   help="the door it would come through (default est)")
    p.add_argument("--endpoint", default="default", help="the endpoint label")
    p.add_argument("--requester", default=request_check.CHECK_REQUESTER,
                   help="who the door would have authenticated")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles_check)

    p = _group(sub, "certs").add_parser(
        "check", help="where issued certificates differ from what their profile builds "
                      "today (exit 3 if any differs)")
    p.add_argument("serial", nargs="?", help="one certificate (hex serial)")
    p.add_argument("--profile", help="every live certificate of this profile")
    p.add_argument("--all", action="store_true",
                   help="with --profile: revoked and expired certificates too")
    p.add_argument("--limit", type=int, default=100,
                   help="differing certificates listed (all are counted)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_certs_check)

    p = _group(sub, "requests").add_parser(
        "show", help="a request's whole trail: authentication, rules, votes, approvals, "
                     "signing, answer")
    p.add_argument("id", help="the request id (or a request.denied event's request_id)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_requests_show)


# -- profiles check -----------------------------------------------------------------------

def read_csr(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CSR_BYTES * 2 + 1)
    except OSError as exc:
        raise MalformedInput(f"cannot read {path}: {exc.strerror}") from exc
    pem = data.lstrip().startswith(b"-----BEGIN")
    return load_csr(data, MAX_CSR_BYTES * 2 if pem else MAX_CSR_BYTES, pem=pem)


def cmd_profiles_check(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    request = request_check.request_for(ctx.config, read_csr(args.csr), args.profile,
                                        args.protocol, args.endpoint, args.requester)
    result = request_check.check_request(ctx.authority, request)
    if args.json:
        _out(json.dumps(result.as_json(), indent=2))
    else:
        _out(check_text(result))
    return DIFFERS if result.decision == request_check.REFUSE else 0


def check_text(result: request_check.RequestCheck) -> str:
    lines = [f"profile {result.profile} (protocol {result.protocol}, endpoint "
             f"{result.endpoint}, requester {result.requester})", "",
             render([s.as_json() for s in result.steps], ["rule", "verdict", "reason"],
                    False), ""]
    if result.votes:
        lines += [render([v.as_json() for v in result.votes], ["plugin", "vote", "reason"],
                         False), ""]
    else:
        lines += ["policy votes: none (no plugin votes, or a rule refused first)", ""]
    extra = f" ({result.approvals_required} approver(s))" \
        if result.decision == request_check.APPROVAL else ""
    lines.append(f"decision: {result.decision}{extra}"
                 + (f": {result.reason}" if result.reason else ""))
    c = result.certificate
    if c is not None:
        rows = [("subject", c.subject), ("sans", ", ".join(c.sans)),
                ("key usage", ", ".join(c.key_usage)),
                ("ext key usage", ", ".join(c.extended_key_usage)),
                ("basic constraints", f"CA:{str(c.is_ca).upper()}"),
                ("not before", c.not_before.isoformat(timespec="seconds")),
                ("not after", c.not_after.isoformat(timespec="seconds")),
                ("validity", profile_drift.span(c.validity_seconds)),
                ("ca", c.ca), ("identity", c.identity), ("key type", c.key_type),
                ("signature hash", c.signature_hash or "-"),
                ("extensions", ", ".join(c.extensions))]
        lines += ["", "certificate it would get (not signed):"]
        lines += [f"  {k:18} {v}" for k, v in rows]
    return "\n".join(lines)


# -- certs check --------------------------------------------------------------------------

def _drift_rows(drift: profile_drift.CertificateDrift) -> list[dict[str, Any]]:
    return [{"serial": drift.serial, **d.as_json()} for d in drift.differences]


COLUMNS = ["serial", "aspect", "certificate", "profile"]


def cmd_certs_check(args: argparse.Namespace, opener: Opener) -> int:
    if (args.serial is None) == (args.profile is None):
        raise MalformedInput("give a serial or --profile")
    ctx = opener.context()
    profiles = ctx.authority.profiles
    if args.serial is not None:
        record = ctx.authority.certificate(_serial(args.serial))
        if record is None:
            raise NotFound("no certificate with this serial")
        one = profile_drift.compare(record, profiles)
        if args.json:
            _out(json.dumps(one.as_json(), indent=2))
        elif one.differs:
            _out(render(_drift_rows(one), COLUMNS, False))
        else:
            _out(f"{one.serial}: as profile {one.profile} builds it today")
        return DIFFERS if one.differs else 0
    if args.profile not in profiles:
        raise NotFound(f"no profile named {args.profile!r}")
    report = profile_drift.check_profile(ctx.db, profiles, args.profile, ctx.clock.now(),
                                         limit=args.limit, live_only=not args.all)
    if args.json:
        _out(json.dumps(report.as_json(), indent=2))
    else:
        rows = [r for c in report.certificates for r in _drift_rows(c)]
        if rows:
            _out(render(rows, COLUMNS, False))
        more = f", first {len(report.certificates)} listed" if report.truncated else ""
        which = "" if args.all else "live "
        _out(f"{report.checked} {which}certificate(s) of profile {report.profile} checked, "
             f"{report.differing} differ{more}")
    return DIFFERS if report.differing else 0


# -- requests show ------------------------------------------------------------------------

def cmd_requests_show(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    found = request_trail.trail(ctx.db, ctx.authority.profiles, args.id)
    if args.json:
        _out(json.dumps(found.as_json(), indent=2, default=str))
        return 0
    head = [("request", found.request_id), ("status", found.status),
            ("profile", found.profile),
            ("door", f"{found.protocol} endpoint {found.endpoint or '-'}"),
            ("requester", f"{found.requester} ({found.auth_method or 'not recorded'})"),
            ("subject", found.subject or "-"), ("names", ", ".join(found.sans) or "-"),
            ("reason", found.reason or "-"),
            ("approvals", ", ".join(f"{a} at {at.isoformat(timespec='seconds')}"
                                    for a, at in found.approvals) or "-"),
            ("certificate", found.certificate_serial or "-"), ("answer", found.answer)]
    rows = [{**s.as_json(), "at": s.as_json()["at"] or "-"} for s in found.steps]
    _out("\n".join(f"{k:12} {v}" for k, v in head) + "\n\n"
         + render(rows, ["at", "step", "actor", "summary"], False))
    return 0
