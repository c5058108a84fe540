"""newOrder, order polling and finalize (RFC 8555 §7.4, RFC 9773 `replaces`, the
profiles extension). Status transitions are conditional UPDATEs (§7.1.6)."""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.exc import IntegrityError

from enroll import validity_rules
from enroll.crypto.keys import spki_sha256
from enroll.csr import load_csr
from enroll.errors import BadCSR, EnrollError, MalformedInput, Unavailable
from enroll.model import (
    Authorization,
    CertificateRecord,
    EnrollmentRequest,
    Issued,
    Pending,
    Requester,
)
from enroll.store.transaction import Tx

from . import ari, eab, fields, limits, names, store
from .accounts import Verified, account_url
from .endpoint import AcmeEndpoint
from .jws import b64d, jwk_of, thumbprint
from .problems import AcmeProblem, document, from_error, malformed, not_found, unauthorized
from .settings import DEVICE_ATTEST

ORDER_LIFETIME = dt.timedelta(days=7)
ORDER_EXPIRED = document("malformed", "order expired")
RETRY_AFTER = 3


def _token() -> str:
    return secrets.token_urlsafe(32)


def new_order(ep: AcmeEndpoint, v: Verified) -> tuple[store.Order, list[str]]:
    account = v.account
    assert account is not None
    payload = v.jws.payload()
    not_before = fields.timestamp(payload.get("notBefore"), "notBefore")
    not_after = fields.timestamp(payload.get("notAfter"), "notAfter")
    idents, refused = fields.identifiers(payload.get("identifiers"))
    offered = ep.settings.challenges
    for ident in idents:
        value = ident["value"]
        if ident["type"] == fields.PERMANENT_IDENTIFIER:
            # Proven by the device's attestation, not by a name policy.
            if not ep.settings.device_attest:
                refused.append(document("unsupportedIdentifier", "this endpoint does not "
                                        "offer device-attest-01", identifier=ident))
            continue
        check = value[2:] if value.startswith("*.") else value
        ok = names.allowed(ident["type"], value, ep.settings.allow) and (
            account.allow is None or names.allowed(ident["type"], value, account.allow))
        if value.startswith("*.") and "dns-01" not in offered:
            ok = False  # wildcards only through dns-01
        if ident["type"] == "ip" and not set(offered) & {"http-01", "tls-alpn-01"}:
            ok = False  # RFC 8738 §7: no dns-01 for IP identifiers
        if not ok:
            refused.append(document("rejectedIdentifier", f"{check} is not allowed here",
                                    identifier=ident))
    if refused:
        raise fields.refusal(refused)
    profile = payload.get("profile", ep.settings.profile)
    if not isinstance(profile, str) or profile not in ep.settings.profiles:
        raise AcmeProblem("invalidProfile", "this endpoint does not offer that profile")
    now = ep.clock.now()
    try:
        # The core's rule (the profile's validity bounds what may be asked).
        validity_rules.check(ep.authority.profile(profile), not_before, not_after, now)
    except MalformedInput as exc:
        raise malformed(exc.detail) from None
    replaces = link = None
    if "replaces" in payload:
        replaces, link = _replaced_serial(ep, account, payload["replaces"], idents, profile)
    limits.check_new_order(ep, account.id, (i["value"] for i in idents))
    order = store.Order(secrets.token_urlsafe(12), ep.label, account.id, "pending", idents,
                        profile, replaces, None, None, None, now + ORDER_LIFETIME,
                        replaces_link=link, not_before=not_before, not_after=not_after)
    authz_ids = []
    try:
        with ep.db.write() as conn:
            if replaces is not None:
                _claim_replacement(conn, replaces, now)
            store.add_order(conn, order, now)
            for ident in idents:
                authz_ids.append(_add_authz(conn, order, ident, offered))
            limits.order_created(ep, account.id, conn)
    except IntegrityError:
        # A concurrent newOrder committed its claim on `replaces` first (the partial
        # unique index on acme_orders.replaces).
        if replaces is None:
            raise
        raise _already_replaced() from None
    return order, sorted(authz_ids)


def _add_authz(conn: Tx, order: store.Order, ident: dict[str, str],
               offered: tuple[str, ...]) -> str:
    wildcard = ident["value"].startswith("*.") and ident["type"] == "dns"
    if ident["type"] == fields.PERMANENT_IDENTIFIER:
        types: tuple[str, ...] = (DEVICE_ATTEST,)
    elif wildcard:
        types = ("dns-01",)
    elif ident["type"] == "ip":
        types = tuple(t for t in offered if t not in ("dns-01", DEVICE_ATTEST))
    else:
        types = tuple(t for t in offered if t != DEVICE_ATTEST)
    authz = store.Authz(secrets.token_urlsafe(12), order.id, order.account_id,
                        ident["type"], ident["value"], wildcard, "pending", order.expires)
    token = _token()  # one token per authorization, shared by its challenges
    store.add_authz(conn, authz, [
        store.Challenge(secrets.token_urlsafe(12), authz.id, t, token, "pending",
                        None, None) for t in types])
    return authz.id


def _claim_replacement(conn: Tx, serial: str, now: dt.datetime) -> None:
    """RFC 9773 §5, in the transaction that inserts the order: the certificate must not
    be replaced by another order that is not invalid. An order that expired unfinalized
    is made invalid here first (it could never be finalized), releasing its claim."""
    store.expire_replacing(conn, serial, now, ORDER_EXPIRED)
    if store.order_replacing(conn, serial) is not None:
        raise _already_replaced()


def _already_replaced() -> AcmeProblem:
    return AcmeProblem("alreadyReplaced", "this certificate was already replaced", 409)


def _replaced_serial(ep: AcmeEndpoint, account: store.Account, cert_id: object,
                     idents: list[dict[str, str]], profile: str) -> tuple[str, str | None]:
    """RFC 9773 §5: the certificate must be known, this account's, not yet replaced;
    (serial, None). Or, across doors and accounts (the lineage of issue 11), bound to
    this account by `_bound_link`: (serial, the link reason). The core's renewal rule
    still checks the profile line and a shared name at finalize."""
    aki, serial = ari.parse_cert_id(cert_id)
    record = ep.authority.certificate(serial)
    if record is None or not ari.matches(record, aki):
        raise malformed("replaces names an unknown certificate")
    if record.requester.endswith(f"/acct/{account.id}"):
        # Not yet replaced: checked in newOrder's write (_claim_replacement).
        return serial, None
    link = _bound_link(ep, account, record, idents, profile)
    if link is None:
        raise unauthorized("replaces names another account's certificate"
                           if record.protocol == "acme" else
                           f"replaces names a certificate issued over {record.protocol} "
                           "that this account is not bound to")
    if record.superseded_by is not None:
        # Another door renewed it: no ACME order claims it, so check here.
        raise _already_replaced()
    return serial, link


def _bound_link(ep: AcmeEndpoint, account: store.Account, record: CertificateRecord,
                idents: list[dict[str, str]], profile: str) -> str | None:
    """Why this account may replace a certificate it did not get: its EAB key carries
    an identity pattern the certificate's identity matches (``eab``), or the profile
    links by names (``replaces_by_names``) and the certificate's names are exactly the
    order's identifiers (``names``). None: it may not."""
    if account.eab_kid is not None:
        with ep.db.read() as conn:
            key = store.get_eab_key(conn, account.eab_kid)
        if key is not None and eab.identity_matches(key["identity"], record.identity):
            return "eab"
    if ep.authority.profile(profile).fleet.replaces_by_names:
        wanted = {f"{i['type']}:{i['value']}".lower() for i in idents}
        if record.sans and {n.lower() for n in record.sans} == wanted:
            return "names"
    return None


def load_order(ep: AcmeEndpoint, v: Verified, order_id: str) -> store.Order:
    """The order if it belongs to the signing account; polls a waiting core request."""
    with ep.db.read() as conn:
        order = store.get_order(conn, order_id)
    if order is None or order.endpoint != ep.label:
        raise not_found("no such order")
    if v.account is None or order.account_id != v.account.id:
        raise unauthorized("this order belongs to another account")
    if order.status == "processing" and order.request_id:
        order = _poll(ep, order)
    elif order.status in ("pending", "ready") and order.expires <= ep.clock.now():
        # RFC 8555 §7.1.6: an order that expires before it is finalized is invalid.
        with ep.db.write() as conn:
            store.set_order(conn, order.id, ("pending", "ready"), status="invalid",
                            error=ORDER_EXPIRED)
            order = store.get_order(conn, order.id) or order
    return order


def authz_ids(ep: AcmeEndpoint, order_id: str) -> list[str]:
    with ep.db.read() as conn:
        return [a.id for a in store.order_authzs(conn, order_id)]


def _poll(ep: AcmeEndpoint, order: store.Order) -> store.Order:
    """§7.1.6: processing until the core's request is issued or rejected."""
    assert order.request_id is not None
    outcome = ep.authority.status(order.request_id)
    if isinstance(outcome, Pending):
        return order
    with ep.db.write() as conn:
        if isinstance(outcome, Issued):
            store.set_order(conn, order.id, "processing", status="valid",
                            certificate_serial=outcome.serial_hex)
        else:
            store.set_order(conn, order.id, "processing", status="invalid",
                            error=document("rejectedIdentifier", outcome.reason or "rejected"))
        fresh = store.get_order(conn, order.id)
    assert fresh is not None
    return fresh


def _permanent(order: store.Order) -> list[str]:
    return [i["value"] for i in order.identifiers
            if i["type"] == fields.PERMANENT_IDENTIFIER]


def _attested(ep: AcmeEndpoint, order: store.Order) -> tuple[list[str], str | None]:
    """Every identifier the order's devices attested (the ordered one and, for an Apple
    device, both its serial number and UDID), and the device id (its serial)."""
    if not _permanent(order):
        return [], None
    with ep.db.read() as conn:
        records = [a.attested for a in store.order_authzs(conn, order.id)
                   if a.type == fields.PERMANENT_IDENTIFIER and a.attested]
    found = sorted({str(i) for r in records for i in r.get("identifiers", [])}
                   | set(_permanent(order)))
    device_id = next((str(r["device_id"]) for r in records if r.get("device_id")),
                     _permanent(order)[0])
    return found, device_id


def _check_attested_key(ep: AcmeEndpoint, order: store.Order,
                        csr: x509.CertificateSigningRequest) -> None:
    """draft-ietf-acme-device-attest: the certificate is for the key the device
    attested, not for any key the account holds."""
    key = spki_sha256(csr.public_key())
    with ep.db.read() as conn:
        attested = [a.attested for a in store.order_authzs(conn, order.id)
                    if a.type == fields.PERMANENT_IDENTIFIER]
    if not attested or any(
            a is None or not hmac.compare_digest(str(a.get("key_sha256", "")), key)
            for a in attested):
        raise AcmeProblem("badCSR", "the CSR's key is not the key the device attested")


def _csr_names(csr: x509.CertificateSigningRequest,
               with_cn: bool = True) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found |= {("dns", n.lower()) for n in san.get_values_for_type(x509.DNSName)}
        found |= {("ip", str(ip)) for ip in san.get_values_for_type(x509.IPAddress)}
    except x509.ExtensionNotFound:
        pass
    except ValueError:
        raise AcmeProblem("badCSR", "the CSR's extensions do not parse") from None
    for attr in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME) \
            if with_cn else ():
        cn = str(attr.value).lower()
        try:
            found.add(("ip", str(ipaddress.ip_address(cn))))
        except ValueError:
            found.add(("dns", cn))
    return found


def finalize(ep: AcmeEndpoint, v: Verified, order_id: str, base: str) -> store.Order:
    """RFC 8555 §7.4: names must equal the order's; ready -> processing exactly once,
    then the core issues (or queues for approval)."""
    order = load_order(ep, v, order_id)
    if order.status != "ready":
        raise AcmeProblem("orderNotReady", f"order is {order.status}, not ready", 403)
    der = b64d(v.jws.payload().get("csr"), "csr")
    try:
        csr = load_csr(der)
    except EnrollError as exc:
        # RFC 8555 §7.4: a CSR the server cannot use is badCSR, even one that is too
        # large or does not parse.
        raise AcmeProblem("badCSR", exc.detail) from None
    devices = _permanent(order)
    wanted = {(i["type"], i["value"]) for i in order.identifiers
              if i["type"] != fields.PERMANENT_IDENTIFIER}
    # A device's CN is its serial (the core checks it against what was attested), not
    # a DNS name: only its SAN names must be the order's names.
    if _csr_names(csr, with_cn=not devices) != wanted:
        raise AcmeProblem("badCSR", "the CSR must name exactly the order's identifiers")
    if devices:
        _check_attested_key(ep, order, csr)
    account = v.account
    assert account is not None
    if _same_key(csr, account.thumbprint):
        raise AcmeProblem("badCSR", "the certificate key must differ from the account key")
    requester = f"acme-account:{account_url(base, account.id)}"
    with ep.db.write() as conn:
        # What is submitted is kept with the order, so recovery can submit it again if
        # this worker dies before the answer is stored (protocols.acme.recovery).
        if not store.set_order(conn, order.id, "ready", status="processing",
                               csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
                               finalized_by=requester, processing_since=ep.clock.now()):
            raise AcmeProblem("orderNotReady", "order is already being finalized", 403)
    return submit(ep, order, csr, requester)


def submit(ep: AcmeEndpoint, order: store.Order, csr: x509.CertificateSigningRequest,
           requester: str, *, recovering: bool = False) -> store.Order:
    """Hand a ``processing`` order's CSR to the core and record its answer. A refused
    CSR or a transient failure returns the order to ``ready`` (the client may finalize
    again); in `recovering` a transient failure leaves it ``processing`` for the next
    pass, and a refused CSR makes it invalid (the client sees why)."""
    # The core issues only what the order's validated identifiers name: an e-mail or URI
    # name, or a subject field the CSR adds, is refused (not silently issued).
    # A permanent identifier the device attested may be the subject serialNumber: the
    # profile's identity (``subject.serialNumber``) is then the device's.
    devices, device_id = _attested(ep, order)
    authorized = Authorization(
        names=frozenset(f"{i['type']}:{i['value']}" for i in order.identifiers
                        if i["type"] != fields.PERMANENT_IDENTIFIER),
        subject=frozenset((x509.NameOID.SERIAL_NUMBER.dotted_string, d) for d in devices),
        source="the order's identifiers")
    link = order.replaces_link if order.replaces else ("attested" if devices else None)
    request = EnrollmentRequest(
        csr=csr, profile=order.profile, protocol="acme", endpoint=ep.label,
        requester=Requester(requester, "jws"),
        transaction_id=order.id, replaces=order.replaces, link=link,
        ca=ep.settings.ca,
        attributes={"acme_order": order.id}, authorized=authorized,
        not_before=order.not_before, not_after=order.not_after,
        device_id=device_id)
    try:
        outcome = ep.authority.submit(request)
    except Unavailable as exc:
        if not recovering:
            with ep.db.write() as conn:
                store.set_order(conn, order.id, "processing", status="ready")
        raise from_error(exc) from None
    except (BadCSR, MalformedInput) as exc:
        # Nothing was stored for a CSR the profile refuses: the client may finalize
        # again (with a CSR it can fix; recovery has no other CSR: invalid).
        with ep.db.write() as conn:
            if recovering:
                store.set_order(conn, order.id, "processing", status="invalid",
                                error=from_error(exc).document())
            else:
                store.set_order(conn, order.id, "processing", status="ready")
        raise from_error(exc) from None
    except EnrollError as exc:
        problem = from_error(exc)
        with ep.db.write() as conn:
            store.set_order(conn, order.id, "processing", status="invalid",
                            error=problem.document())
        raise problem from None
    with ep.db.write() as conn:
        if isinstance(outcome, Issued):
            store.set_order(conn, order.id, "processing", status="valid",
                            request_id=outcome.request_id,
                            certificate_serial=outcome.serial_hex)
        elif isinstance(outcome, Pending):
            store.set_order(conn, order.id, "processing", request_id=outcome.request_id)
        else:
            store.set_order(conn, order.id, "processing", status="invalid",
                            request_id=outcome.request_id,
                            error=document("rejectedIdentifier", outcome.reason or "rejected"))
        fresh = store.get_order(conn, order.id)
    assert fresh is not None
    return fresh


def _same_key(csr: x509.CertificateSigningRequest, account_thumbprint: str) -> bool:
    """Is the CSR's key the account key? (RFC 8555 §11.1: they must differ.)"""
    try:
        return thumbprint(jwk_of(csr.public_key())) == account_thumbprint
    except ValueError:  # a key JWK cannot express is never an account key
        return False
