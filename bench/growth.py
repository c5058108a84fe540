"""Growth benchmark: a store with a million certificates against an empty one.

    python bench/growth.py generate --db sqlite:///.data/growth.db \\
        --certificates 1000000 --revoked 100000
    python bench/growth.py measure --db sqlite:///.data/growth.db
    python bench/growth.py generate --db postgresql://postgres@127.0.0.1:5432/growth ...
    python bench/growth.py measure --db postgresql://postgres@127.0.0.1:5432/growth

`generate` opens the store the way the app does (migrations, then the CAs the config
names: a root and three issuing CAs, created in that database on first use), sends a
few requests per (CA, profile) through `Authority.submit` for real certificate
templates, then bulk-inserts requests, certificates and audit rows shaped as the
pipeline writes them (executemany on SQLite, COPY on PostgreSQL). Every certificate row
carries a real certificate signed by its CA with that row's unique serial (a template's
TBS with the serial replaced, re-signed), so OCSP answers name the right serial; the
subject, names and dates in the DER are the template's, those of the row vary. All
revocations are on CA ``issuing`` (the CRL the growth target is about) and none are
expired, so every revoked serial is on its CRL.

`measure` runs, on that store and on an empty one with the same CAs configuration:
issuance through `Authority.submit` (as bench/core.py), `enroll certs list` / `enroll
requests list` through the CLI's own command functions, OCSP through the responder the
HTTP route calls (2,000 random serials of the store), and a CRL rebuild for
``issuing``. It adds its issuances to the store it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from enroll import config as config_mod
from enroll.context import AppContext, build_context
from enroll.crypto.keys import spki_sha256
from enroll.model import Requester
from enroll.store.db import normalise_url
from enroll.testing import make_csr, make_key, request

PASSPHRASE = "enroll growth benchmark CA passphrase"  # noqa: S105 - benchmark stores only
PRIMARY_CA = "issuing"
# (name, share of the certificates)
ISSUING_CAS = ((PRIMARY_CA, 0.80), ("issuing-eu", 0.15), ("issuing-iot", 0.05))
PROFILES = (("device", 0.6, 365), ("server", 0.4, 90))  # (name, share, validity days)
TEMPLATES_PER_PAIR = 4
SPAN_DAYS = 365  # issuance times spread over the last year


# -- the store ----------------------------------------------------------------------------

def bench_config(db_url: str, data_dir: Path) -> config_mod.Config:
    """The embedded default plus two more issuing CAs under the same root."""
    raw = config_mod.default_raw_config()
    for name, _share in ISSUING_CAS[1:]:
        raw["cas"][name] = {"backend": "local", "parent": "root",
                            "subject": f"CN=enroll {name} CA,O=enroll",
                            "key_type": "ec-p256", "validity_days": 1825}
    # One profile with a fraction renewal window, one with the default (the inventory's
    # state filters take both paths).
    raw["profiles"]["server"]["renew_before"] = "33%"
    raw.update({"data_dir": str(data_dir), "database_url": db_url,
                "ca_passphrase": PASSPHRASE})
    return config_mod.from_raw(raw)


@contextlib.contextmanager
def open_store(db_url: str) -> Iterator[AppContext]:
    """An AppContext on `db_url`, as the app opens it (migrates, creates the CAs)."""
    with tempfile.TemporaryDirectory(prefix="growth-") as tmp:
        ctx = build_context(bench_config(db_url, Path(tmp)))
        try:
            yield ctx
        finally:
            ctx.db.dispose()


@contextlib.contextmanager
def empty_store_url(db_url: str) -> Iterator[str]:
    """A fresh empty store beside `db_url`: a SQLite file in a temporary directory next to
    the filled one, or a new schema in the same PostgreSQL database; removed afterwards."""
    if normalise_url(db_url).startswith("sqlite"):
        path = db_url.split("///", 1)[1] if "///" in db_url else ""
        where = Path(path).resolve().parent if path and path != ":memory:" else None
        with tempfile.TemporaryDirectory(prefix="growth-empty-", dir=where) as tmp:
            yield f"sqlite:///{tmp}/empty.db"
        return
    import sqlalchemy
    from sqlalchemy.engine import make_url

    schema = f"growth_empty_{secrets.token_hex(4)}"
    url = make_url(normalise_url(db_url))
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    query = {**url.query, "options": f"-csearch_path={schema}"}
    try:
        yield url.set(query=query).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


# -- certificates: a real template, re-serialled and re-signed ----------------------------

def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(content)) + content


SERIAL_BITS = 126  # serials in [2**126, 2**127): always a 16-octet DER INTEGER


class Template:
    """One issued certificate whose TBS is re-used with another serial."""

    def __init__(self, cert: x509.Certificate, key: Any) -> None:
        serial = cert.serial_number
        if not (1 << SERIAL_BITS) <= serial < (1 << (SERIAL_BITS + 1)):
            raise ValueError("template serial is not 16 octets")
        tbs = cert.tbs_certificate_bytes
        needle = b"\x02\x10" + serial.to_bytes(16, "big")
        at = tbs.find(needle)
        if at < 0 or tbs.find(needle, at + 1) >= 0:
            raise ValueError("template serial not found exactly once in the TBS")
        self._head, self._tail = tbs[:at + 2], tbs[at + 18:]
        der = cert.public_bytes(serialization.Encoding.DER)
        signature_bits = _tlv(0x03, b"\x00" + cert.signature)
        after_tbs = der[der.find(tbs) + len(tbs):]
        self._algorithm = after_tbs[:len(after_tbs) - len(signature_bits)]
        self._key = key
        hash_alg = cert.signature_hash_algorithm
        assert hash_alg is not None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            self._sign: Callable[[bytes], bytes] = lambda data: key.sign(
                data, ec.ECDSA(hash_alg))
        elif isinstance(key, rsa.RSAPrivateKey):
            self._sign = lambda data: key.sign(data, padding.PKCS1v15(), hash_alg)
        else:
            raise ValueError("only EC and RSA CAs are supported by the generator")
        self.subject = cert.subject.rfc4514_string()

    def der(self, serial: int) -> bytes:
        tbs = self._head + serial.to_bytes(16, "big") + self._tail
        body = tbs + self._algorithm + _tlv(0x03, b"\x00" + self._sign(tbs))
        return _tlv(0x30, body)


# -- rows ---------------------------------------------------------------------------------

REQUEST_COLUMNS = ("id", "status", "profile", "ca", "protocol", "endpoint", "requester",
                   "auth_method", "transaction_id", "key_fingerprint", "subject", "sans",
                   "replaces", "reason", "certificate_serial", "csr_pem", "attributes",
                   "decided_by", "created_at", "updated_at", "identity")
CERTIFICATE_COLUMNS = ("serial", "ca", "request_id", "status", "profile", "protocol",
                       "requester", "subject", "sans", "key_fingerprint", "not_before",
                       "not_after", "revoked_at", "revocation_reason", "replaces", "der",
                       "created_at", "identity", "endpoint", "device_id", "link")
IDENTITY_COLUMNS = ("identity", "name", "serial", "status", "protocol", "endpoint",
                    "profile", "ca", "not_before", "not_after", "requester", "device_id",
                    "first_issued", "last_issued", "certificates", "migrated_from")
AUDIT_COLUMNS = ("at", "type", "actor", "request_id", "serial", "details")
JSON_COLUMNS = {"sans", "attributes", "details"}
TIME_COLUMNS = {"created_at", "updated_at", "not_before", "not_after", "revoked_at", "at",
                "first_issued", "last_issued"}
REASONS = tuple(r.value for r in (
    x509.ReasonFlags.unspecified, x509.ReasonFlags.key_compromise, x509.ReasonFlags.superseded,
    x509.ReasonFlags.cessation_of_operation, x509.ReasonFlags.affiliation_changed))


@dataclass
class Pools:
    templates: dict[tuple[str, str], list[Template]]
    csrs: list[tuple[str, str]]  # (csr_pem, key fingerprint)


@dataclass
class Batch:
    requests: list[tuple[Any, ...]] = field(default_factory=list)
    certificates: list[tuple[Any, ...]] = field(default_factory=list)
    audit: list[tuple[Any, ...]] = field(default_factory=list)
    identities: list[tuple[Any, ...]] = field(default_factory=list)


class Identity:
    """What `enroll.store.identities` keeps for one identity, folded in as its
    certificates are generated (in any time order): the current certificate is the
    newest live one, else the newest."""

    __slots__ = ("count", "first", "last", "live", "newest", "previous_protocol")

    def __init__(self) -> None:
        self.count = 0
        self.first: dt.datetime | None = None
        self.last: dt.datetime | None = None
        self.live: tuple[Any, ...] | None = None
        self.newest: tuple[Any, ...] | None = None
        self.previous_protocol: str | None = None

    def add(self, row: tuple[Any, ...], live: bool) -> None:
        created = row[0]
        self.count += 1
        self.first = created if self.first is None else min(self.first, created)
        self.last = created if self.last is None else max(self.last, created)
        if self.newest is None or created > self.newest[0]:
            if self.newest is not None:
                self.previous_protocol = self.newest[3]
            self.newest = row
        if live and (self.live is None or created > self.live[0]):
            self.live = row

    def row(self, identity: str) -> tuple[Any, ...]:
        from enroll.store.identities import fold

        current = self.live or self.newest
        assert current is not None
        (_created, serial, status, protocol, endpoint, profile, ca, not_before, not_after,
         requester, device_id) = current
        migrated = (self.previous_protocol if self.previous_protocol not in (None, protocol)
                    else None)
        return (identity, fold(identity), serial, status, protocol, endpoint, profile, ca,
                not_before, not_after, requester, device_id, self.first, self.last, self.count,
                migrated)


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, ...]]) -> Any:
    x = rng.random()
    for item in weighted:
        x -= item[1]
        if x <= 0:
            return item
    return weighted[-1]


def _identity(rng: random.Random, i: int, base: str, previous: str | None) -> tuple[
        str, str, str, str | None, dict[str, Any], str]:
    """(protocol, endpoint, requester, transaction_id, attributes, auth_method)."""
    kind = rng.random()
    if previous is not None and kind < 0.5:
        return ("est", "default", f"cert:{previous}", None, {"operation": "simplereenroll"},
                "renewal-cert")
    if kind < 0.45:
        return ("scep", rng.choice(("default", "mdm", "iot")), "scep:default",
                f"{rng.getrandbits(160):040x}",
                {"scep_message_type": "PKCSReq"}, "challenge")
    if kind < 0.75:
        return ("est", "default", f"est-user:fleet{rng.randrange(200):03d}", None,
                {"operation": "simpleenroll"}, "basic")
    if kind < 0.97:
        return ("acme", "", f"acme-account:{base}/acme/acct/{rng.randrange(50000)}", None,
                {"acme_order": f"{rng.getrandbits(64):016x}"}, "jws")
    return ("core", "", "operator:ops", None, {}, "operator")


class RowMaker:
    """Rows as the pipeline writes them: request (issued) + certificate + two audit events
    (request.approved, certificate.issued), and certificate.revoked for revocations."""

    def __init__(self, pools: Pools, now: dt.datetime, seed: int, base_url: str) -> None:
        self.pools = pools
        self.now = now
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data
        self.base = base_url
        self.previous: dict[str, str] = {}  # last serial per device name (renewals)
        self.identities: dict[str, Identity] = {}

    def serial(self) -> int:
        return self.rng.getrandbits(SERIAL_BITS) | (1 << SERIAL_BITS)

    def row(self, i: int, batch: Batch, revoke: bool) -> str:
        rng = self.rng
        ca, _share = _pick(rng, ISSUING_CAS)
        if revoke:
            ca = PRIMARY_CA
        profile, _share, validity = _pick(rng, PROFILES)
        age = rng.random() * SPAN_DAYS
        if revoke:  # revoked certificates are unexpired (at least a week left)
            age = rng.random() * max(0.0, validity - 7 - 1) + 1
        created = self.now - dt.timedelta(days=age)
        not_after = created + dt.timedelta(days=validity)
        device = rng.randrange(400_000)
        host = (f"dev-{device:06d}.iot.example.com" if profile == "device"
                else f"www{device % 97}.svc-{device:06d}.example.net")
        if profile == "device":
            subject = f"CN={host},OU=Sensors,O=Example Corp"
            sans = [f"dns:{host}"] + ([f"email:ops+{device}@example.com"]
                                     if device % 5 == 0 else [])
        else:
            subject = f"CN={host}"
            sans = [f"dns:{host}", f"dns:api.svc-{device:06d}.example.net"] + (
                [f"ip:10.{device % 256}.{(device >> 8) % 256}.{device % 199 + 1}"]
                if device % 7 == 0 else [])
        previous = self.previous.get(host)
        protocol, endpoint, requester, tx_id, attributes, method = _identity(
            rng, i, self.base, previous)
        replaces = previous if requester.startswith("cert:") else None
        serial_int = self.serial()
        serial = format(serial_int, "x")
        self.previous[host] = serial
        template = rng.choice(self.pools.templates[(ca, profile)])
        # Every certificate its own key (the fingerprint index gets random keys, as in
        # the field); the CSR text is one of the templates'.
        csr_pem, _template_fingerprint = rng.choice(self.pools.csrs)
        fingerprint = f"{rng.getrandbits(256):064x}"
        request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        # As the default profiles name them: device by subject CN, server by its names.
        identity = f"subject.CN:{host}" if profile == "device" else f"san:dns:{host}"
        device_id = f"udid-{device:06d}" if profile == "device" else None
        issued_at = created + dt.timedelta(milliseconds=rng.randrange(2, 40))
        batch.requests.append((
            request_id, "issued", profile, ca, protocol, endpoint, requester, method, tx_id,
            fingerprint, subject, sans, replaces, "", serial, csr_pem, attributes, None,
            created, issued_at, identity))
        revoked_at = reason = None
        if revoke:
            revoked_at = min(issued_at + (self.now - issued_at) * rng.random(),
                             self.now - dt.timedelta(seconds=1))
            reason = rng.choice(REASONS)
        batch.certificates.append((
            serial, ca, request_id, "revoked" if revoke else "valid", profile, protocol,
            requester, subject, sans, fingerprint, created, not_after, revoked_at, reason,
            replaces, template.der(serial_int), issued_at, identity, endpoint, device_id,
            "replaces" if replaces else None))
        self.identities.setdefault(identity, Identity()).add(
            (issued_at, serial, "revoked" if revoke else "valid", protocol, endpoint, profile,
             ca, created, not_after, requester, device_id), not revoke and not_after > self.now)
        batch.audit.append((created, "request.approved", requester, request_id, None, {
            "profile": profile, "protocol": protocol, "endpoint": endpoint, "reason": "",
            "reserved_serial": serial}))
        batch.audit.append((issued_at, "certificate.issued", requester, request_id, serial, {
            "profile": profile, "ca": ca, "protocol": protocol, "subject": subject,
            "sans": sans, "replaces": replaces, "not_after": not_after.isoformat()}))
        if revoke:
            batch.audit.append((revoked_at, "certificate.revoked", "operator", request_id,
                                serial, {"reason": reason, "ca": ca}))
        return serial


# -- bulk writers -------------------------------------------------------------------------

def _sqlite_value(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in JSON_COLUMNS:
        return json.dumps(value)
    if column in TIME_COLUMNS:
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(
            sep=" ", timespec="microseconds")
    return value


class SQLiteWriter:
    def __init__(self, ctx: AppContext) -> None:
        self._pooled = ctx.db.engine.raw_connection()
        self.conn: Any = self._pooled.driver_connection
        self.conn.execute("PRAGMA cache_size=-1000000")  # 1 GB: random-key index inserts
        self.conn.execute("PRAGMA synchronous=OFF")

    def write(self, batch: Batch) -> None:
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        for table, columns, rows in (("requests", REQUEST_COLUMNS, batch.requests),
                                     ("certificates", CERTIFICATE_COLUMNS, batch.certificates),
                                     ("audit_events", AUDIT_COLUMNS, batch.audit),
                                     ("identities", IDENTITY_COLUMNS, batch.identities)):
            marks = ", ".join("?" for _ in columns)
            cur.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                [tuple(_sqlite_value(c, v) for c, v in zip(columns, row, strict=True))
                 for row in rows])
        cur.execute("COMMIT")
        cur.close()

    def finish(self) -> None:
        # No ANALYZE: the app never runs it, so the planner sees what it sees in the field.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._pooled.close()


class PostgresWriter:
    def __init__(self, ctx: AppContext) -> None:
        self._pooled = ctx.db.engine.raw_connection()
        self.conn: Any = self._pooled.driver_connection
        self.conn.autocommit = False

    def write(self, batch: Batch) -> None:
        from psycopg.types.json import Json

        with self.conn.cursor() as cur:
            for table, columns, rows in (("requests", REQUEST_COLUMNS, batch.requests),
                                         ("certificates", CERTIFICATE_COLUMNS,
                                          batch.certificates),
                                         ("audit_events", AUDIT_COLUMNS, batch.audit),
                                         ("identities", IDENTITY_COLUMNS,
                                          batch.identities)):
                json_at = [i for i, c in enumerate(columns) if c in JSON_COLUMNS]
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        values = list(row)
                        for i in json_at:
                            values[i] = Json(values[i])
                        copy.write_row(values)
        self.conn.commit()

    def finish(self) -> None:
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE requests")
            cur.execute("VACUUM ANALYZE certificates")
            cur.execute("VACUUM ANALYZE audit_events")
            cur.execute("VACUUM ANALYZE identities")
        self._pooled.close()


def _pools(ctx: AppContext) -> Pools:
    """Certificates issued through the real pipeline, one handful per (CA, profile)."""
    templates: dict[tuple[str, str], list[Template]] = {}
    csrs: list[tuple[str, str]] = []
    for ca, _share in ISSUING_CAS:
        key = ctx.cas.get(ca)._key  # type: ignore[attr-defined]  # the local CA's signer
        for profile, _s, _v in PROFILES:
            pool = templates.setdefault((ca, profile), [])
            while len(pool) < TEMPLATES_PER_PAIR:
                leaf = make_key()
                name = f"template-{secrets.token_hex(3)}.{profile}.example.com"
                csr = make_csr(leaf, cn=name, dns=[name])
                outcome = ctx.authority.submit(request(
                    csr, profile, ca=ca, requester=Requester("operator:bench", "operator")))
                cert = getattr(outcome, "certificate", None)
                assert cert is not None, outcome
                if (1 << SERIAL_BITS) <= cert.serial_number < (1 << (SERIAL_BITS + 1)):
                    pool.append(Template(cert, key))
                    csrs.append((csr.public_bytes(serialization.Encoding.PEM).decode(),
                                 spki_sha256(leaf.public_key())))
    return Pools(templates, csrs)


@dataclass
class Generated:
    certificates: int
    revoked: list[str]
    seconds: float


def generate(db_url: str, certificates: int, revoked: int, *, seed: int | None = None,
             batch_size: int = 20_000, progress: bool = False) -> Generated:
    if revoked > certificates:
        raise ValueError("cannot revoke more certificates than there are")
    started = time.perf_counter()
    seed = secrets.randbits(64) if seed is None else seed
    with open_store(db_url) as ctx:
        pools = _pools(ctx)
        maker = RowMaker(pools, ctx.clock.now(), seed, ctx.config.public_http_url)
        writer: SQLiteWriter | PostgresWriter = (
            SQLiteWriter(ctx) if ctx.db.is_sqlite else PostgresWriter(ctx))
        # Revocations spread evenly through the issuance order.
        picker = random.Random(seed ^ 0x5EED)  # noqa: S311 - reproducible test data
        revoke_at = set(picker.sample(range(certificates), revoked))
        revoked_serials: list[str] = []
        done = 0
        try:
            while done < certificates:
                batch = Batch()
                for i in range(done, min(certificates, done + batch_size)):
                    is_revoked = i in revoke_at
                    serial = maker.row(i, batch, is_revoked)
                    if is_revoked:
                        revoked_serials.append(serial)
                writer.write(batch)
                done += len(batch.certificates)
                if progress:
                    rate = done / (time.perf_counter() - started)
                    print(f"  {done:>9,} certificates ({rate:,.0f}/s)", file=sys.stderr,
                          flush=True)
            # The inventory: one row per identity, once every certificate is known.
            rows = [state.row(identity) for identity, state in maker.identities.items()]
            for at in range(0, len(rows), batch_size):
                writer.write(Batch(identities=rows[at:at + batch_size]))
            if progress:
                print(f"  {len(rows):>9,} identities", file=sys.stderr, flush=True)
        finally:
            writer.finish()
    return Generated(certificates, revoked_serials, time.perf_counter() - started)


# -- measurements -------------------------------------------------------------------------

def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def issuance_rate(ctx: AppContext, n: int) -> tuple[float, float]:
    """(issuances/s, CPU ms per issuance) through `Authority.submit`, one thread (as
    bench/core.py with -c 1). CPU time is the steadier figure on a busy machine."""
    csrs = [make_csr(make_key(), cn=f"g{i}.example.com", dns=[f"g{i}.example.com"])
            for i in range(min(n, 100))]
    for csr in csrs[:10]:  # warm-up
        ctx.authority.submit(request(csr, "server"))
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        ctx.authority.submit(request(csrs[i % len(csrs)], "server"))
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1000


LIST_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("certs list", {}),
    ("certs list --status valid", {"status": "valid"}),
    ("certs list --status revoked", {"status": "revoked"}),
    ("certs list --ca issuing-iot", {"ca": "issuing-iot"}),
    ("certs list --ca issuing --status revoked", {"ca": PRIMARY_CA, "status": "revoked"}),
    ("certs list --limit 1000", {"limit": 1000}),
    ("requests list (pending)", {"requests": "pending"}),
    ("requests list --status issued", {"requests": "issued"}),
    ("requests list --status all", {"requests": "all"}),
)


def run_cli_list(ctx: AppContext, case: dict[str, Any]) -> str:
    """The CLI's own command function on an already open context; returns its output."""
    from enroll.cli import commands

    if "requests" in case:
        args = argparse.Namespace(status=case["requests"], limit=100, json=False)
        func = commands.cmd_requests_list
    else:
        args = argparse.Namespace(status=case.get("status"), ca=case.get("ca"),
                                  limit=case.get("limit", 100), json=False)
        func = commands.cmd_certs_list
    opener = commands.Opener(args, {})
    opener._context = ctx
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        func(args, opener)
    return out.getvalue()


def timed(fn: Callable[[], Any], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def sample_serials(ctx: AppContext, n: int, seed: int = 1) -> list[tuple[str, str, str]]:
    """Up to `n` random (serial, ca, status) of the store's issuing CAs."""
    cas = [name for name, _s in ISSUING_CAS]
    marks = ", ".join("?" for _ in cas)
    with ctx.db.read() as tx:
        rows = tx.all("SELECT serial, ca, status FROM certificates "  # noqa: S608
                      f"WHERE ca IN ({marks}) AND protocol <> 'ca' ORDER BY random() LIMIT ?",
                      (*cas, n))
    return [(str(r["serial"]), str(r["ca"]), str(r["status"])) for r in rows]


def ocsp_request(ctx: AppContext, ca: str, serial_hex: str) -> bytes:
    issuer = ctx.cas.get(ca).certificate
    # Build from the issuer: the same hashes a client computes (RFC 6960 CertID).
    from enroll.ocsp import _key_bits

    name_hash = hashes.Hash(hashes.SHA1())  # noqa: S303 - OCSP CertID default
    name_hash.update(issuer.subject.public_bytes())
    key_hash = hashes.Hash(hashes.SHA1())  # noqa: S303
    key_hash.update(_key_bits(issuer))
    req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        name_hash.finalize(), key_hash.finalize(), int(serial_hex, 16),
        hashes.SHA1()).build()  # noqa: S303
    return req.public_bytes(serialization.Encoding.DER)


def ocsp_latencies(ctx: AppContext, n: int) -> tuple[list[float], list[float], int]:
    """(wall ms, CPU ms) per `OCSPResponder.respond`, and how many distinct serials."""
    samples = sample_serials(ctx, n)
    if not samples:  # an empty store: ask for the issuing CA's serials that exist
        samples = [(format(secrets.randbits(SERIAL_BITS) | (1 << SERIAL_BITS), "x"),
                    PRIMARY_CA, "unknown")]
    reqs = [ocsp_request(ctx, ca, serial) for serial, ca, _s in samples]
    while len(reqs) < n:
        reqs.extend(reqs[: n - len(reqs)])
    for der in reqs[:20]:
        ctx.ocsp.respond(der)
    lat, cpu = [], []
    for der in reqs:
        t0, c0 = time.perf_counter(), time.thread_time()
        ctx.ocsp.respond(der)
        lat.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return lat, cpu, len(samples)


def crl_rebuild(ctx: AppContext, rounds: int) -> tuple[list[float], list[float], int]:
    """(wall ms, CPU ms) of each `CRLService.regenerate` of the primary CA, and the
    number of entries of the CRL it made."""
    wall, cpu = [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        ctx.crls.regenerate(PRIMARY_CA)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    crl = x509.load_der_x509_crl(ctx.crls.current(PRIMARY_CA))
    return wall, cpu, len(crl)


def store_counts(ctx: AppContext) -> tuple[int, int]:
    with ctx.db.read() as tx:
        total = (tx.one("SELECT COUNT(*) AS n FROM certificates WHERE protocol <> 'ca'")
                 or {"n": 0})["n"]
        revoked = (tx.one("SELECT COUNT(*) AS n FROM certificates WHERE status = 'revoked'")
                   or {"n": 0})["n"]
    return int(total), int(revoked)


@dataclass
class Result:
    label: str
    empty: float
    filled: float
    unit: str
    target: str
    met: bool | None


def measure(db_url: str, *, issuances: int = 2000, ocsp_requests: int = 2000,
            list_rounds: int = 5, crl_rounds: int = 3, rounds: int = 3,
            out: Callable[[str], None] = print) -> list[Result]:
    results: list[Result] = []
    with empty_store_url(db_url) as empty_url, open_store(db_url) as filled, \
            open_store(empty_url) as empty:
        total, revoked = store_counts(filled)
        out(f"filled store: {total:,} certificates, {revoked:,} revoked "
            f"({'SQLite' if filled.db.is_sqlite else 'PostgreSQL'})")
        # Issuance: alternate the stores so drift on a shared machine hits both alike.
        runs: dict[str, list[tuple[float, float]]] = {"empty": [], "filled": []}
        for _ in range(rounds):
            runs["empty"].append(issuance_rate(empty, issuances))
            runs["filled"].append(issuance_rate(filled, issuances))
        e_rate, f_rate = (statistics.median(r[0] for r in runs[k]) for k in ("empty", "filled"))
        e_cpu, f_cpu = (statistics.median(r[1] for r in runs[k]) for k in ("empty", "filled"))
        results.append(Result(f"issuance, Authority.submit, c=1 (median of {rounds} x "
                              f"{issuances})", e_rate, f_rate, "/s", "filled >= 0.9x empty",
                              f_rate >= 0.9 * e_rate))
        results.append(Result("issuance CPU per certificate (same runs)", e_cpu, f_cpu,
                              "ms", "filled <= 1.1x empty", f_cpu <= 1.1 * e_cpu))
        for label, case in LIST_CASES:
            ms = {}
            for name, ctx in (("empty", empty), ("filled", filled)):
                run_cli_list(ctx, case)  # first (cold) run not counted
                ms[name] = max(timed(lambda c=ctx, k=case: run_cli_list(c, k),  # type: ignore[misc]
                                     list_rounds))
            informational = case.get("limit", 100) > 100
            results.append(Result(f"enroll {label} (max of {list_rounds})", ms["empty"],
                                  ms["filled"], "ms", "" if informational else "< 100 ms",
                                  None if informational else ms["filled"] < 100))
        e_lat, e_cpu, _ = ocsp_latencies(empty, ocsp_requests)
        f_lat, f_cpu, f_n = ocsp_latencies(filled, ocsp_requests)
        results.append(Result(f"OCSP respond p50 ({ocsp_requests} requests)",
                              percentile(e_lat, 50), percentile(f_lat, 50), "ms", "", None))
        results.append(Result(f"OCSP respond p99 ({f_n} random serials)",
                              percentile(e_lat, 99), percentile(f_lat, 99), "ms", "< 5 ms",
                              percentile(f_lat, 99) < 5))
        results.append(Result("OCSP respond CPU p99 (same requests)", percentile(e_cpu, 99),
                              percentile(f_cpu, 99), "ms", "", None))
        # The first rebuild in a process builds every entry; later ones reuse them.
        e_crl, e_crl_cpu, e_entries = crl_rebuild(empty, crl_rounds)
        f_crl, f_crl_cpu, f_entries = crl_rebuild(filled, crl_rounds)
        results.append(Result(f"CRL rebuild '{PRIMARY_CA}', first in the process "
                              f"({e_entries:,} / {f_entries:,} entries)", e_crl[0], f_crl[0],
                              "ms", "< 2000 ms", f_crl[0] < 2000))
        results.append(Result("CRL rebuild CPU, first", e_crl_cpu[0], f_crl_cpu[0], "ms",
                              "", None))
        if crl_rounds > 1:
            results.append(Result(f"CRL rebuild, next ones (max of {crl_rounds - 1})",
                                  max(e_crl[1:]), max(f_crl[1:]), "ms", "< 2000 ms",
                                  max(f_crl[1:]) < 2000))
            results.append(Result("CRL rebuild CPU, next ones (max)", max(e_crl_cpu[1:]),
                                  max(f_crl_cpu[1:]), "ms", "", None))
    out(render(results))
    if hasattr(os, "getloadavg"):
        out("load average at the end: {:.1f} {:.1f} {:.1f} ({} cores)".format(
            *os.getloadavg(), os.cpu_count()))
    return results


def render(results: Sequence[Result]) -> str:
    def fmt(v: float, unit: str) -> str:
        return f"{v:,.0f}" if unit == "/s" else f"{v:,.1f}"

    lines = ["| measurement | empty store | filled store | filled/empty | target | met |",
             "|---|---|---|---|---|---|"]
    for r in results:
        ratio = r.filled / r.empty if r.empty else float("nan")
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.label} | {fmt(r.empty, r.unit)} {r.unit} | "
                     f"{fmt(r.filled, r.unit)} {r.unit} | {ratio:.2f}× | {r.target} | {met} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="fill a store")
    g.add_argument("--db", required=True, help="database URL (sqlite:///… or postgresql://…)")
    g.add_argument("--certificates", type=int, default=1_000_000)
    g.add_argument("--revoked", type=int, default=100_000)
    g.add_argument("--seed", type=int)
    g.add_argument("--batch", type=int, default=20_000)
    m = sub.add_parser("measure", help="measure a filled store against an empty one")
    m.add_argument("--db", required=True)
    m.add_argument("-n", "--issuances", type=int, default=2000)
    m.add_argument("--ocsp", type=int, default=2000)
    m.add_argument("--rounds", type=int, default=3, help="issuance rounds per store")
    m.add_argument("--list-rounds", type=int, default=5)
    m.add_argument("--crl-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "generate":
        done = generate(args.db, args.certificates, args.revoked, seed=args.seed,
                        batch_size=args.batch, progress=True)
        print(f"generated {done.certificates:,} certificates ({len(done.revoked):,} revoked) "
              f"in {done.seconds:.0f} s")
        return 0
    measure(args.db, issuances=args.issuances, ocsp_requests=args.ocsp, rounds=args.rounds,
            list_rounds=args.list_rounds, crl_rounds=args.crl_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
