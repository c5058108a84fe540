"""ACME's part of the recovery pass (the ``enroll_recover`` hook, `enroll.recovery`).

An order whose finalizing worker died stays ``processing`` with no core request id.
Once it has been processing longer than the grace period, one worker claims it (a
conditional UPDATE of ``processing_since``) and submits the CSR that finalize stored,
under the same transaction id (the order id): if the core already has the request its
answer is reused (and a request the dead worker left ``approved`` is finished by the
core's recovery), otherwise the request is made now. The order ends ``valid`` (the
client's next poll gets the certificate URL), stays ``processing`` for an approval
queue, or becomes ``invalid`` with the core's reason. An order finalized before the
CSR was stored (migration 0005) cannot be submitted again and returns to ``ready``, so
the client finalizes it again (RFC 8555 §7.1.6 allows ready after processing only by
omission; this is the one way to end with a certificate).

An order that does have a request id needs nothing here: its poll asks the core.
"""

from __future__ import annotations

import datetime as dt
import logging

from cryptography import x509

from enroll.door import FrontEnd

from . import store
from .endpoint import AcmeEndpoint, build_endpoints
from .orders import submit
from .problems import AcmeProblem

log = logging.getLogger("enroll.acme.recovery")


_ENDPOINTS: dict[int, tuple[FrontEnd, dict[str, AcmeEndpoint]]] = {}


def _endpoints(frontend: FrontEnd) -> dict[str, AcmeEndpoint]:
    """The endpoints of this front-end, built once per worker (building reads the
    deployment secrets)."""
    cached = _ENDPOINTS.get(id(frontend))
    if cached is None or cached[0] is not frontend:
        if len(_ENDPOINTS) >= 8:  # a worker has one front-end; tests build many
            _ENDPOINTS.clear()
        cached = _ENDPOINTS[id(frontend)] = (
            frontend, {ep.label: ep for ep in build_endpoints(frontend)})
    return cached[1]


def recover(frontend: FrontEnd, grace: float, limit: int = 100) -> int:
    """Resolve orders stuck in processing; how many this call resolved."""
    endpoints = _endpoints(frontend)
    if not endpoints:
        return 0
    now = frontend.clock.now()
    before = now - dt.timedelta(seconds=grace)
    with frontend.db.read() as tx:
        stuck = store.stuck_processing(tx, before, limit)
    resolved = 0
    for order_id in stuck:
        with frontend.db.write() as tx:
            if not store.claim_processing(tx, order_id, before, now):
                continue  # another worker has it
            order = store.get_order(tx, order_id)
            given = store.finalize_input(tx, order_id)
        if order is None or order.request_id is not None:
            continue  # its poll follows the core request
        ep = endpoints.get(order.endpoint)
        if ep is None:
            continue  # an endpoint no longer configured: nobody can poll it
        resolved += _resubmit(ep, order, given)
    return resolved


def _resubmit(ep: AcmeEndpoint, order: store.Order, given: tuple[str, str] | None) -> int:
    if given is None:
        with ep.db.write() as tx:
            store.set_order(tx, order.id, "processing", status="ready")
        log.warning("order %s was left processing with no CSR stored: back to ready",
                    order.id)
        return 1
    csr_pem, requester = given
    log.warning("order %s was left processing: submitting its CSR again", order.id)
    try:
        submit(ep, order, x509.load_pem_x509_csr(csr_pem.encode()), requester,
               recovering=True)
    except AcmeProblem as problem:
        # Recorded on the order (invalid) or left processing for the next pass.
        log.warning("recovery of order %s: %s", order.id, problem.detail)
    return 1
