"""Core sub-commands: serve, init, db, ca, certs, requests, crl, audit
(``ca rotate-passphrase`` lives in `enroll.cli.passphrase`)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pluggy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from enroll import config as config_mod
from enroll.approvals import cli_actor
from enroll.certificate_listing import SORTS as CERT_SORTS
from enroll.cli import inventory
from enroll.cli.tables import render
from enroll.config import Config
from enroll.config_sections import check_sections
from enroll.config_values import as_duration
from enroll.context import AppContext, build_context
from enroll.errors import ConfigError
from enroll.model import CertificateStatus, RequestStatus
from enroll.plugin_loader import build_plugin_manager
from enroll.renewal_states import STATES
from enroll.store import migrate, queries
from enroll.store.db import Database

PEM = serialization.Encoding.PEM
ACTOR_HELP = "the name you act as; recorded with your OS account (os-user:<you> as <name>)"


class Opener:
    """Loads the config and opens the context only when a command needs them.

    ``context()`` opens the store as it is: it migrates nothing and creates no CA (only
    ``enroll init`` and ``enroll serve`` do, through ``context(create=True)``), and
    unseals a CA key only when it signs. A command that signs passes ``sign=True`` so a
    missing passphrase stops it before it changes anything."""

    def __init__(self, args: argparse.Namespace, env: Mapping[str, str]) -> None:
        self.args = args
        self.env = env
        self._config: Config | None = None
        self._context: AppContext | None = None
        self._pm: pluggy.PluginManager | None = None

    def data_dir(self) -> Path:
        return Path(self.args.data_dir or self.env.get("ENROLL_DATA_DIR") or
                    config_mod.DEFAULT_DATA_DIR)

    def config(self) -> Config:
        """The validated configuration; every table checked by its owner."""
        if self._config is None:
            config = config_mod.load(self.args.config, self.env, data_dir=self.args.data_dir)
            check_sections(config, self.plugins(config))
            self._config = config
        return self._config

    def plugins(self, config: Config | None = None) -> pluggy.PluginManager:
        if self._pm is None:
            cfg = config or self.config()
            self._pm = build_plugin_manager(cfg.plugins, cfg.disable_plugins)
        return self._pm

    def context(self, *, create: bool = False, sign: bool = False) -> AppContext:
        if self._context is None:
            config = self.config()
            self._context = build_context(config, pm=self.plugins(config), create=create,
                                          unseal=create or sign)
        return self._context


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("serve", help="run the engine (HTTP + HTTPS listeners)")
    p.add_argument("--host", help="listen address (ENROLL_HOST; default 127.0.0.1)")
    p.add_argument("--http-port", type=int, help="HTTP port (ENROLL_HTTP_PORT; default 8080)")
    p.add_argument("--https-port", type=int,
                   help="HTTPS port (ENROLL_HTTPS_PORT; default 8443)")
    p.add_argument("--workers", type=int, help="worker processes (ENROLL_WORKERS; default 1)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("init", help="create the data dir, config, CAs and TLS certificate")
    p.set_defaults(func=cmd_init)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command")
    p = db.add_parser("upgrade", help="apply all migrations")
    p.set_defaults(func=cmd_db_upgrade)

    ca = sub.add_parser("ca", help="certificate authorities").add_subparsers(dest="ca_command")
    p = ca.add_parser("list", help="list CAs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ca_list)
    p = ca.add_parser("show", help="show one CA")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ca_show)
    p = ca.add_parser("revoke", help="revoke a CA's certificate (its parent's CRL lists "
                                     "it; the CA issues nothing more)")
    p.add_argument("name")
    p.add_argument("--reason", default="ca_compromise",
                   choices=[r.name for r in x509.ReasonFlags if r.name != "remove_from_crl"])
    p.add_argument("--actor", default="operator")
    p.set_defaults(func=cmd_ca_revoke)
    p = ca.add_parser("export", help="print a CA certificate (or its chain) as PEM")
    p.add_argument("name")
    p.add_argument("--chain", action="store_true", help="include issuers up to the root")
    p.add_argument("--out", type=Path, help="write to this file instead of stdout")
    p.set_defaults(func=cmd_ca_export)
    from enroll.cli import passphrase  # it imports this module

    passphrase.register(ca)

    certs = sub.add_parser("certs", help="issued certificates").add_subparsers(
        dest="certs_command")
    p = certs.add_parser("list", help="list certificates (newest first), with the "
                                      "inventory's filters")
    p.add_argument("--status", choices=[s.value for s in CertificateStatus])
    p.add_argument("--ca")
    p.add_argument("--protocol", help="scep, est, acme, core")
    p.add_argument("--profile")
    p.add_argument("--endpoint", help="the endpoint label that issued it")
    p.add_argument("--identity", help="exactly this identity (as `enroll inventory` "
                                      "prints it)")
    p.add_argument("--state", choices=STATES,
                   help="the certificate's renewal state in its profile's window")
    p.add_argument("--expiring-within", type=inventory.duration, metavar="DURATION",
                   help="unrevoked and expiring within (30d, 12h)")
    p.add_argument("--search", metavar="TEXT", type=inventory.search_text,
                   help="a prefix of the identity, an exact identity, device id or serial; "
                        "* is a wildcard (*.iot.example.com)")
    p.add_argument("--sort", choices=CERT_SORTS,
                   help="default: issued, newest first (not_after, soonest first, with "
                        "--state or --expiring-within)")
    p.add_argument("--desc", action="store_true", help="descending order")
    p.add_argument("--limit", type=inventory.bounded_limit, default=100)
    page = p.add_mutually_exclusive_group()
    page.add_argument("--offset", type=inventory.bounded_offset, default=0)
    page.add_argument("--after", metavar="CURSOR",
                      help="the cursor a previous page printed (more: --after CURSOR)")
    inventory.add_output_flags(p)
    p.set_defaults(func=cmd_certs_list)
    p = certs.add_parser("show", help="show one certificate")
    p.add_argument("serial", help="serial number in hex")
    p.add_argument("--pem", action="store_true", help="print the certificate as PEM")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_certs_show)
    p = certs.add_parser("revoke", help="revoke a certificate, or every live certificate "
                                        "of an identity, requester or device")
    p.add_argument("serial", nargs="?", help="serial number in hex")
    p.add_argument("--identity", help="every live certificate of this identity "
                                      "(subject.CN:dev-42)")
    p.add_argument("--requester", help="every live certificate this requester enrolled")
    p.add_argument("--device-id", help="every live certificate of this device")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be revoked; revoke nothing")
    p.add_argument("--json", action="store_true")
    p.add_argument("--reason", default="unspecified",
                   choices=[r.name for r in x509.ReasonFlags if r.name != "remove_from_crl"])
    p.add_argument("--actor", help=ACTOR_HELP)
    p.set_defaults(func=cmd_certs_revoke)
    p = certs.add_parser("revoke-superseded",
                         help="revoke renewed certificates past their profile's "
                              "revoke_superseded_after (run from cron)")
    p.set_defaults(func=cmd_certs_revoke_superseded)

    reqs = sub.add_parser("requests", help="enrollment requests and the approval queue") \
        .add_subparsers(dest="requests_command")
    p = reqs.add_parser("list", help="list requests (default: pending)")
    p.add_argument("--status", default="pending",
                   choices=[s.value for s in RequestStatus] + ["all"])
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_requests_list)
    p = reqs.add_parser("approve", help="approve a pending request (issued once it has "
                                        "its profile's approvals_required approvers)")
    p.add_argument("id")
    p.add_argument("--actor", help=ACTOR_HELP)
    p.set_defaults(func=cmd_requests_approve)
    p = reqs.add_parser("reject", help="reject a pending request")
    p.add_argument("id")
    p.add_argument("--reason", default="rejected by an operator")
    p.add_argument("--actor", help=ACTOR_HELP)
    p.set_defaults(func=cmd_requests_reject)

    p = sub.add_parser("crl", help="print or write a CA's current CRL")
    p.add_argument("--ca", help="CA name (default: the issuing CA of the default profile)")
    p.add_argument("--out", type=Path, help="write DER to this file")
    p.add_argument("--pem", action="store_true", help="PEM instead of DER")
    p.add_argument("--refresh", action="store_true", help="re-sign now")
    p.set_defaults(func=cmd_crl)

    audit = sub.add_parser("audit", help="audit trail").add_subparsers(dest="audit_command")
    p = audit.add_parser("export", help="export audit events as JSON lines (for a SIEM)")
    p.add_argument("--since", help="ISO 8601 time or a duration like 24h / 7d")
    p.add_argument("--request", help="only events of this request id")
    p.set_defaults(func=cmd_audit_export)
    p = audit.add_parser("verify", help="check the hash chain of the audit log; exits 1 "
                                        "naming the first broken event")
    p.set_defaults(func=cmd_audit_verify)


def _out(text: str) -> None:
    sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))


# -- serve / init / db ------------------------------------------------------------------

def _init_data_dir(opener: Opener) -> None:
    """First start without a config file: generate one (and the CA passphrase)."""
    from enroll.embedded import init_data_dir

    if opener.args.config is None and not opener.env.get("ENROLL_CONFIG"):
        # An unknown variable or table stops start-up before anything is written (the
        # sections' own checks run once the generated config exists).
        preview = config_mod.load(None, opener.env, data_dir=opener.args.data_dir)
        check_sections(preview, build_plugin_manager(preview.plugins, preview.disable_plugins),
                       parse=False)
        supplied = opener.env.get("ENROLL_CA_PASSPHRASE_FILE")
        if init_data_dir(opener.data_dir(), build_plugin_manager(),
                         Path(supplied) if supplied else None) is not None:
            opener._config = None
            opener._pm = None


def _prepare(opener: Opener) -> tuple[AppContext, Path]:
    from enroll.embedded import ensure_tls

    _init_data_dir(opener)
    ctx = opener.context(create=True)
    cert, key, bundle = ensure_tls(ctx)
    return ctx, bundle


def cmd_init(args: argparse.Namespace, opener: Opener) -> int:
    ctx, bundle = _prepare(opener)
    _out(f"data dir {ctx.config.data_dir}\nconfig   {ctx.config.source}\n"
         f"CAs      {', '.join(ctx.cas.names())}\nTLS CA   {bundle}")
    return 0


def cmd_serve(args: argparse.Namespace, opener: Opener) -> int:
    from enroll import logs, recovery, serve
    from enroll.embedded import banner, write_endpoints

    env = dict(opener.env)
    for flag, var in (("host", "ENROLL_HOST"), ("http_port", "ENROLL_HTTP_PORT"),
                      ("https_port", "ENROLL_HTTPS_PORT"), ("workers", "ENROLL_WORKERS")):
        if getattr(args, flag) is not None:
            env[var] = str(getattr(args, flag))
    opener.env = env
    _init_data_dir(opener)
    base = opener.config()
    listeners = serve.Listeners(serve.bind(base.host, base.http_port, listen=False),
                                serve.bind(base.host, base.https_port, listen=False))
    opener._config = serve.with_bound_ports(base, listeners)
    logs.configure(opener.config().log_format, opener.config().log_level)
    ctx, bundle = _prepare(opener)
    tls_dir = ctx.config.data_dir / "tls"
    client_cas = tls_dir / "client-cas.pem"
    cas: list[x509.Certificate] = []
    for contributed in ctx.pm.hook.enroll_tls_client_cas(frontend=ctx.frontend):
        cas.extend(contributed or [])
    if not cas:
        cas = [ctx.authority.chain(name)[-1] for name in ctx.cas.names()]
    client_cas.write_bytes(b"".join(c.public_bytes(PEM) for c in dict.fromkeys(cas)))
    info = write_endpoints(ctx, ctx.config.public_http_url, ctx.config.public_https_url, bundle)
    print(banner(info), flush=True)
    print(f"  endpoints.json {ctx.config.data_dir / 'endpoints.json'}", flush=True)
    # Finish what a dead worker of the previous run left half done, before any worker
    # starts (each worker then repeats the pass on its schedule).
    recovery.run(ctx)
    config = ctx.config
    ctx.db.dispose()
    serve.run(config, listeners, serve.TLSFiles(tls_dir / "server.pem", tls_dir / "server.key",
                                                client_cas))
    return 0


def cmd_db_upgrade(args: argparse.Namespace, opener: Opener) -> int:
    cfg = opener.config()
    db = Database(cfg.database_url)
    migrate.upgrade(db, opener.plugins(cfg))
    _out(f"database at head: {', '.join(sorted(migrate.current_heads(db)))}")
    db.dispose()
    return 0


# -- ca ---------------------------------------------------------------------------------

def _ca_row(ctx: AppContext, name: str) -> dict[str, Any]:
    backend = ctx.cas.get(name)
    cert = backend.certificate
    return {"name": name, "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "x"),
            "not_after": cert.not_valid_after_utc.isoformat(timespec="seconds"),
            "parent": ctx.config.cas[name].parent or "",
            "backend": ctx.config.cas[name].backend,
            "sha256": cert.fingerprint(hashes.SHA256()).hex(),
            "status": _ca_status(ctx, cert)}


def _ca_status(ctx: AppContext, cert: x509.Certificate) -> str:
    """valid / revoked from the CA's certificate row (``unknown`` until a start-up has
    stored it: data dirs created by older versions)."""
    record = ctx.authority.certificate(cert.serial_number)
    return record.status.value if record is not None else "unknown"


def cmd_ca_list(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    rows = [_ca_row(ctx, n) for n in ctx.cas.names()]
    _out(render(rows, ["name", "subject", "parent", "backend", "not_after"], args.json))
    return 0


def cmd_ca_show(args: argparse.Namespace, opener: Opener) -> int:
    row = _ca_row(opener.context(), args.name)
    _out(json.dumps(row, indent=2) if args.json else
         "\n".join(f"{k:10} {v}" for k, v in row.items()))
    return 0


def cmd_ca_revoke(args: argparse.Namespace, opener: Opener) -> int:
    from enroll.ca_certificates import issuer_of, serial_of

    ctx = opener.context(sign=True)
    serial = serial_of(ctx.cas, args.name)
    rec = ctx.authority.revoke(serial, x509.ReasonFlags[args.reason], args.actor)
    _out(f"revoked CA {args.name} (certificate {rec.serial_hex}, listed on the CRL of "
         f"{issuer_of(args.name, ctx.config.cas)}); it issues no more certificates")
    return 0


def cmd_ca_export(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    backend = ctx.cas.get(args.name)
    certs = backend.chain if args.chain else (backend.certificate,)
    pem = b"".join(c.public_bytes(PEM) for c in certs)
    if args.out:
        args.out.write_bytes(pem)
    else:
        sys.stdout.write(pem.decode())
    return 0


# -- certs ------------------------------------------------------------------------------

def _cert_row(rec: Any) -> dict[str, Any]:
    return {"serial": rec.serial_hex, "status": rec.status.value, "ca": rec.ca,
            "profile": rec.profile, "protocol": rec.protocol, "endpoint": rec.endpoint,
            "identity": rec.identity, "subject": rec.subject,
            "sans": ",".join(rec.sans), "not_after": rec.not_after.isoformat(timespec="seconds"),
            "requester": rec.requester, "replaces": rec.replaces,
            "revoked_at": rec.revoked_at.isoformat(timespec="seconds") if rec.revoked_at else None,
            "revocation_reason": rec.revocation_reason.value if rec.revocation_reason else None}


def _serial(text: str) -> str:
    from enroll.crypto.serials import parse_serial_hex
    from enroll.errors import MalformedInput

    try:
        return parse_serial_hex(text)
    except ValueError as exc:
        raise MalformedInput(f"not a serial number: {text[:48]!r}") from exc


CERT_CSV_COLUMNS = ("serial", "status", "state", "ca", "profile", "protocol", "endpoint",
                    "identity", "device_id", "subject", "sans", "not_before", "not_after",
                    "issued", "requester", "replaces", "migrated_from", "revoked_at",
                    "revocation_reason")
CERT_TABLE_COLUMNS = ("serial", "status", "state", "profile", "protocol", "subject",
                      "not_after")


def cmd_certs_list(args: argparse.Namespace, opener: Opener) -> int:
    from enroll.certificate_listing import Filters, list_certificates
    from enroll.errors import MalformedInput

    ctx = opener.context()
    opt = {name: getattr(args, name, None) for name in (
        "protocol", "profile", "endpoint", "identity", "state", "expiring_within", "search",
        "sort", "after")}
    filters = Filters(status=args.status, ca=args.ca, protocol=opt["protocol"],
                      profile=opt["profile"], endpoint=opt["endpoint"],
                      identity=opt["identity"], state=opt["state"],
                      expiring_within=opt["expiring_within"], search=opt["search"])
    try:
        page = list_certificates(
            ctx.db, ctx.authority.profiles, filters, now=ctx.clock.now(), sort=opt["sort"],
            descending=True if getattr(args, "desc", False) else None, limit=args.limit,
            offset=getattr(args, "offset", 0), after=opt["after"])
    except MalformedInput as exc:  # what argparse could not check: a cursor
        print(f"enroll certs list: error: {exc.detail}", file=sys.stderr)
        return 2
    rows = [{**_cert_row(i.record), "state": i.state, "device_id": i.record.device_id,
             "not_before": i.record.not_before.isoformat(timespec="seconds"),
             "issued": i.issued.isoformat(timespec="seconds"),
             "migrated_from": i.migrated_from} for i in page.items]
    if getattr(args, "csv", False):
        _out(inventory.as_csv(rows, CERT_CSV_COLUMNS))
    else:
        _out(render(rows, list(CERT_TABLE_COLUMNS), args.json))
    if page.next:
        # A JSON or CSV document stays one document: the cursor goes to stderr.
        more = f"more: --after {page.next}"
        if args.json or getattr(args, "csv", False):
            print(more, file=sys.stderr)
        else:
            _out(more)
    return 0


def cmd_certs_show(args: argparse.Namespace, opener: Opener) -> int:
    from enroll.errors import NotFound

    rec = opener.context().authority.certificate(_serial(args.serial))
    if rec is None:
        raise NotFound("no certificate with this serial")
    if args.pem:
        sys.stdout.write(rec.certificate.public_bytes(PEM).decode())
        return 0
    row = _cert_row(rec)
    _out(json.dumps(row, indent=2) if args.json else
         "\n".join(f"{k:18} {v if v is not None else ''}" for k, v in row.items()))
    return 0


def cmd_certs_revoke(args: argparse.Namespace, opener: Opener) -> int:
    from enroll.errors import MalformedInput

    selectors = {"identity": args.identity, "requester": args.requester,
                 "device_id": args.device_id}
    given = [k for k, v in selectors.items() if v is not None]
    if len(given) + (args.serial is not None) != 1:
        raise MalformedInput("give a serial or exactly one of --identity, --requester, "
                             "--device-id")
    reason = x509.ReasonFlags[args.reason]
    if args.serial is not None:
        if args.dry_run:
            raise MalformedInput("--dry-run is for --identity, --requester, --device-id")
        authority = opener.context(sign=True).authority
        rec = authority.revoke(_serial(args.serial), reason, cli_actor(args.actor).identity)
        _out(json.dumps(_cert_row(rec)) if args.json else
             f"revoked {rec.serial_hex} ({args.reason})")
        return 0
    authority = opener.context(sign=not args.dry_run).authority
    records = authority.revoke_all(**selectors, reason=reason,
                                   actor=cli_actor(args.actor).identity,
                                   dry_run=args.dry_run)
    rows = [{**_cert_row(r), "identity": r.identity, "device_id": r.device_id}
            for r in records]
    if args.json:
        _out(json.dumps({"dry_run": args.dry_run, "reason": args.reason,
                         "certificates": rows}, indent=2))
        return 0
    _out(render(rows, ["serial", "status", "protocol", "identity", "device_id",
                       "not_after"], False))
    verb = "would be revoked (dry run)" if args.dry_run else "revoked"
    _out(f"{len(records)} certificate(s) {verb} ({args.reason})")
    return 0


def cmd_certs_revoke_superseded(args: argparse.Namespace, opener: Opener) -> int:
    revoked = opener.context(sign=True).authority.revoke_superseded()
    for serial in revoked:
        _out(f"revoked {serial} (superseded)")
    _out(f"{len(revoked)} superseded certificate(s) revoked")
    return 0


# -- requests ---------------------------------------------------------------------------

def cmd_requests_list(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    # Pending requests past their profile's pending_expiry are expired first (audited),
    # so the queue shows only what can still be approved.
    ctx.authority.expire_pending()
    status = None if args.status == "all" else RequestStatus(args.status)
    rows = [{"id": r.id, "status": r.status.value, "profile": r.profile,
             "protocol": r.protocol, "requester": r.requester, "subject": r.subject,
             "sans": ",".join(r.sans), "reason": r.reason,
             "created_at": r.created_at.isoformat(timespec="seconds"),
             "certificate_serial": r.certificate_serial,
             # Four eyes: approvers so far of the approvers the profile requires.
             "approvals": f"{len(ctx.authority.approvers(r.id))}/"
                          f"{ctx.authority.approvals_required(r)}"
             if r.status is RequestStatus.PENDING else None}
            for r in ctx.authority.list_requests(status, args.limit)]
    _out(render(rows, ["id", "status", "profile", "protocol", "subject", "created_at"],
                args.json))
    return 0


def cmd_requests_approve(args: argparse.Namespace, opener: Opener) -> int:
    from enroll.model import AwaitingApproval

    actor = cli_actor(args.actor)
    result = opener.context(sign=True).authority.approve(args.id, actor)
    if isinstance(result, AwaitingApproval):
        left = result.required - len(result.approvers)
        _out(f"approval {len(result.approvers)} of {result.required} recorded for {args.id} "
             f"as {actor.identity}; waiting for {left} more approver(s) "
             f"(so far: {', '.join(result.approvers)})")
        return 0
    sys.stderr.write(f"recorded as {actor.identity}\n")
    _out(f"approved {args.id}: issued certificate {result.serial_hex}")
    return 0


def cmd_requests_reject(args: argparse.Namespace, opener: Opener) -> int:
    opener.context().authority.reject(args.id, cli_actor(args.actor).identity, args.reason)
    _out(f"rejected {args.id}")
    return 0


# -- crl / audit ------------------------------------------------------------------------

def cmd_crl(args: argparse.Namespace, opener: Opener) -> int:
    from enroll.embedded import default_ca

    ctx = opener.context(sign=args.refresh)
    ca = args.ca or default_ca(ctx.config)
    der = ctx.crls.regenerate(ca) if args.refresh else ctx.crls.current(ca)
    if args.pem or not args.out:
        crl = x509.load_der_x509_crl(der)
        data = crl.public_bytes(PEM)
    else:
        data = der
    if args.out:
        args.out.write_bytes(data)
    else:
        sys.stdout.write(data.decode())
    return 0


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    from enroll.errors import MalformedInput

    try:
        return now - dt.timedelta(seconds=as_duration(text, "--since"))
    except ConfigError:
        pass
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedInput("--since takes an ISO 8601 time or a duration like 24h") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def cmd_audit_verify(args: argparse.Namespace, opener: Opener) -> int:
    from enroll.store import audit_chain

    ctx = opener.context()
    # Refusal windows that have passed become events, and every event committed so far
    # is chained (what the workers' scheduler does every few seconds), then verified.
    ctx.authority.close_refusal_windows()
    audit_chain.chain_all(ctx.db)
    with ctx.db.read() as tx:
        verdict = audit_chain.verify(tx)
    if verdict.ok:
        late = f" ({verdict.pending} committed since, not chained yet)" if verdict.pending \
            else ""
        _out(f"audit chain intact: {verdict.events} event(s){late}")
        return 0
    where = f"event {verdict.broken_id}" if verdict.broken_id is not None else "chain head"
    sys.stderr.write(f"audit chain broken at {where}: {verdict.problem}\n")
    return 1


def cmd_audit_export(args: argparse.Namespace, opener: Opener) -> int:
    ctx = opener.context()
    since = parse_since(args.since, ctx.clock.now()) if args.since else None
    with ctx.db.read() as tx:
        events = queries.list_audit(tx, since=since, request_id=args.request)
    for e in events:
        sys.stdout.write(json.dumps({"id": e.id, "at": e.at.isoformat(), "type": e.type,
                                     "actor": e.actor, "request_id": e.request_id,
                                     "serial": e.serial_hex, "details": e.details,
                                     "hash": e.hash},
                                    default=str) + "\n")
    return 0
