"""Clients under fault, and the "nothing lost" audit of what they received.

`run_load` drives N asyncio clients against a running ``enroll serve`` (EST simpleenroll
with HTTP Basic over TLS, and SCEP PKCSReq/CertPoll over HTTP, alternating by client)
while a fault runs in a thread. A client retries each enrolment until it holds a
certificate, as a device would; every answer is tallied, and an answer that is not
protocol-correct for a server fault is a *violation*: a 500 or any other 5xx than 503,
a 503 without ``Retry-After``, a timeout (a hang), a broken connection to enroll, an
unparseable SCEP answer.

`audit` then checks the store through a fresh `AppContext` on the same database:
every certificate a client received is stored, byte for byte, valid, and revocable (it
is revoked and the CRL lists it); no serial twice; no request left ``approved``
without its certificate once the recovery pass has run (see `Audit.stuck`).

Used by the quick tests in tests/faults/ and by bench/faults.py.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enroll.testing.scep_client import ScepClient, csr_with_challenge

PKCS10 = {"content-type": "application/pkcs10", "content-transfer-encoding": "base64"}
PKI_MESSAGE = {"content-type": "application/x-pki-message"}
REQUEST_TIMEOUT = 30.0
"""Seconds an answer may take before the client calls it a hang."""


@dataclass(frozen=True)
class Target:
    """What a client needs, from a server's endpoints.json."""

    est_url: str
    est_auth: tuple[str, str]
    tls_ca: str
    scep_url: str
    scep_challenge: str

    @classmethod
    def from_endpoints(cls, endpoints: dict[str, Any]) -> Target:
        est, scep = endpoints["est"], endpoints["scep"]
        return cls(est["url"], (est["username"], est["password"]),
                   str(endpoints["tls_ca_bundle"]), scep["url"], scep["challenge"])


@dataclass
class Tally:
    received: list[tuple[str, x509.Certificate]] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    failures_seen: int = 0
    """Answers that refused for a server fault (EST 503, SCEP FAILURE): each may leave
    one request the recovery pass has to resolve."""
    gave_up: list[tuple[str, str]] = field(default_factory=list)
    """(protocol, SCEP transactionID or EST subject) of enrolments still PENDING (SCEP)
    or 202 (EST) when the client stopped asking."""
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> str:
        return (f"received={len(self.received)} answers={dict(self.answers)} "
                f"violations={len(self.violations)} gave_up={len(self.gave_up)}")


async def run_load(target: Target, clients: int, *, duration: float,
                   fault: Callable[[], Any] | None = None, fault_after: float = 0.0,
                   retry_pause: float = 0.5, give_up_after: float = 60.0,
                   pending_for: float = 8.0) -> Tally:
    """Enrol with `clients` clients for `duration` seconds (each finishes the enrolment
    it is in, retrying), running `fault()` in a thread `fault_after` seconds in. An
    enrolment is given up after `give_up_after` seconds, or `pending_for` seconds after
    its first PENDING / 202 answer (`Tally.gave_up`)."""
    tally = Tally()
    stop = asyncio.Event()
    ra = await _scep_ra(target)

    async def faulting() -> None:
        if fault is None:
            return
        await asyncio.sleep(fault_after)
        await asyncio.to_thread(fault)

    async def stopping() -> None:
        await asyncio.sleep(duration)
        stop.set()

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    sessions = [httpx.AsyncClient(verify=target.tls_ca, trust_env=False, limits=limits,
                                  timeout=REQUEST_TIMEOUT) for _ in range(clients)]
    try:
        workers = [(_est_client if i % 2 == 0 else _scep_client)(
            i, sessions[i], target, ra, tally, stop, retry_pause, give_up_after, pending_for)
            for i in range(clients)]
        await asyncio.gather(faulting(), stopping(), *workers)
    finally:
        for session in sessions:
            await session.aclose()
    return tally


async def _scep_ra(target: Target) -> x509.Certificate:
    from enroll.protocols.scep import signeddata

    async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_TIMEOUT) as client:
        r = await client.get(target.scep_url, params={"operation": "GetCACert"})
        r.raise_for_status()
    certs, _ = signeddata.degenerate_contents(r.content)
    return next(c for c in certs if not _is_ca(c))


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


async def _post(tally: Tally, proto: str, session: httpx.AsyncClient, url: str,
                **kw: Any) -> httpx.Response | None:
    """One request; a hang or a broken connection to enroll is a violation (None)."""
    started = time.monotonic()
    try:
        r = await session.post(url, **kw)
    except httpx.TimeoutException:
        tally.violations.append(f"{proto}: no answer within {REQUEST_TIMEOUT} s (a hang)")
        return None
    except httpx.TransportError as exc:
        tally.violations.append(f"{proto}: connection to enroll failed: {exc!r}")
        return None
    tally.latencies.append(time.monotonic() - started)
    if r.status_code >= 500 and r.status_code != 503:
        tally.violations.append(f"{proto}: HTTP {r.status_code}: {r.text[:200]!r}")
    elif r.status_code == 503 and not r.headers.get("retry-after"):
        tally.violations.append(f"{proto}: 503 without Retry-After")
    return r


async def _est_client(i: int, session: httpx.AsyncClient, target: Target,
                      ra: x509.Certificate, tally: Tally, stop: asyncio.Event,
                      retry_pause: float, give_up_after: float, pending_for: float) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        key = ec.generate_private_key(ec.SECP256R1())
        csr = csr_with_challenge(key, f"est-{i}-{n}-{os.urandom(3).hex()}", None)
        body = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
        deadline = time.monotonic() + give_up_after
        pending = False
        while time.monotonic() < deadline:
            r = await _post(tally, "est", session, f"{target.est_url}/simpleenroll",
                            content=body, headers=PKCS10, auth=target.est_auth)
            if r is None:
                await asyncio.sleep(retry_pause)
                continue
            tally.answers[f"est {r.status_code}"] += 1
            if r.status_code == 202 and not pending:
                pending = True
                deadline = min(deadline, time.monotonic() + pending_for)
            if r.status_code == 200:
                from enroll.testing.est_client import certs_from

                tally.received.append(("est", certs_from(r.content)[0]))
                break
            if r.status_code == 503:
                tally.failures_seen += 1
            elif r.status_code < 500 and not pending:
                tally.violations.append(f"est: unexpected HTTP {r.status_code}: {r.text[:200]!r}")
            # RFC 7030 §4.2.3: after a 202 (or a 503) the client sends the same request
            # again after Retry-After; the tests cap the wait to keep the run short.
            await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), retry_pause))
        else:
            if pending:
                tally.gave_up.append(("est", csr.subject.rfc4514_string()))
            else:
                tally.violations.append(f"est client {i}: no certificate in {give_up_after} s")
            if stop.is_set():
                break


async def _scep_client(i: int, session: httpx.AsyncClient, target: Target,
                       ra: x509.Certificate, tally: Tally, stop: asyncio.Event,
                       retry_pause: float, give_up_after: float,
                       pending_for: float) -> None:
    from enroll.protocols.scep.pkimessage import PKIStatus

    url = f"{target.scep_url}?operation=PKIOperation"
    n = 0
    while not stop.is_set():
        n += 1
        device = ScepClient(ra, key=ec.generate_private_key(ec.SECP256R1()))
        csr = csr_with_challenge(device.key, f"scep-{i}-{n}-{os.urandom(3).hex()}",
                                 target.scep_challenge)
        tid = os.urandom(12).hex()  # RFC 8894 §3.2.1.1: a retry keeps its transactionID
        polling = False
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            message = device.cert_poll(ra.issuer, csr.subject, tid) if polling \
                else device.pkcs_req(csr, tid)[0]
            r = await _post(tally, "scep", session, url, content=message, headers=PKI_MESSAGE)
            if r is None:
                await asyncio.sleep(retry_pause)
                continue
            if r.status_code != 200:
                tally.answers[f"scep HTTP {r.status_code}"] += 1
                if r.status_code < 500:
                    tally.violations.append(f"scep: HTTP {r.status_code}: {r.text[:200]!r}")
                await asyncio.sleep(retry_pause)
                continue
            try:
                reply = device.read(r.content)
            except Exception as exc:  # noqa: BLE001 - any unreadable CertRep is a violation
                tally.violations.append(f"scep: unreadable CertRep: {exc!r}")
                await asyncio.sleep(retry_pause)
                continue
            tally.answers[f"scep {reply.status.name}"] += 1
            if reply.status is PKIStatus.SUCCESS and reply.certificate is not None:
                tally.received.append(("scep", reply.certificate))
                break
            if reply.status is PKIStatus.PENDING:
                if not polling:
                    deadline = min(deadline, time.monotonic() + pending_for)
                polling = True
            else:
                tally.failures_seen += 1
                polling = False  # a FAILURE ends the transaction: send it again
            await asyncio.sleep(retry_pause)
        else:
            if polling:
                tally.gave_up.append(("scep", tid))
            else:
                tally.violations.append(f"scep client {i}: no certificate in {give_up_after} s")
            if stop.is_set():
                break


# -- the audit --------------------------------------------------------------------------

@dataclass
class Audit:
    stored_certificates: int
    stuck: list[dict[str, Any]]
    """Requests still ``approved`` with no certificate after the recovery pass ran
    (`enroll.recovery`, grace 0): must be none."""
    revoked: int
    recovered: int = 0
    """Requests the fault left ``approved`` without a certificate, which the recovery
    pass signed and stored (a client that gave up while pending gets it on its retry)."""


def audit(data_dir: Path, database_url: str, tally: Tally, *, revoke: bool = True) -> Audit:
    """Check the store against what the clients received (see the module docstring).
    Raises AssertionError naming the first loss found."""
    import datetime as dt

    from enroll import config as config_mod
    from enroll import recovery
    from enroll.context import build_context
    from enroll.model import CertificateStatus

    serials = [cert.serial_number for _, cert in tally.received]
    assert len(serials) == len(set(serials)), "a serial was handed out twice"
    cfg = config_mod.load(None, {"ENROLL_DATABASE_URL": database_url}, data_dir=data_dir)
    ctx = build_context(cfg, run_migrations=False)
    try:
        for proto, cert in tally.received:
            record = ctx.authority.lookup(cert)
            assert record is not None, f"{proto} certificate {cert.serial_number:x} not stored"
            assert record.certificate.public_bytes(serialization.Encoding.DER) == \
                cert.public_bytes(serialization.Encoding.DER)
            assert record.status is CertificateStatus.VALID, (proto, record.status)
        # What a worker's scheduled pass does after `recovery_grace`, at once.
        ctx.authority.recovery_grace = dt.timedelta(0)
        recovered = recovery.run(ctx).requests
        with ctx.db.read() as tx:
            stored = int(tx.scalar("SELECT count(*) FROM certificates WHERE requester "
                                   "NOT LIKE 'system:%'"))
            dup = tx.all("SELECT serial FROM certificates GROUP BY serial "
                         "HAVING count(*) > 1")
            stuck = tx.all("SELECT id, protocol, transaction_id, subject FROM requests "
                           "WHERE status = 'approved'")
            for row in stuck:
                # A stuck request never has a certificate (else it would be `issued`).
                assert tx.scalar("SELECT count(*) FROM certificates WHERE request_id = ?",
                                 (row["id"],)) == 0, row
        assert not dup, dup
        assert stored >= len(serials)
        revoked = 0
        if revoke:
            from cryptography.x509 import ReasonFlags

            for _, cert in tally.received:
                ctx.authority.revoke(cert.serial_number, ReasonFlags.superseded,
                                     actor="fault-test")
                revoked += 1
            issuers = {cert.issuer for _, cert in tally.received}
            for issuer in issuers:
                der = ctx.authority.crl(issuer.public_bytes())
                assert der is not None
                crl = x509.load_der_x509_crl(der)
                listed = {r.serial_number for r in crl}
                missing = [s for _, c in tally.received if c.issuer == issuer
                           for s in [c.serial_number] if s not in listed]
                assert not missing, f"revoked but not on the CRL: {missing[:5]}"
        return Audit(stored, stuck, revoked, recovered)
    finally:
        ctx.db.dispose()
