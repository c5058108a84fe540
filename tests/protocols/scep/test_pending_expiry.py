"""A SCEP client polling (CertPoll) for a request that waited past its profile's
``pending_expiry`` is answered FAILURE badRequest, as for a rejected request."""

from __future__ import annotations

import datetime as dt
from typing import Any

from enroll.protocols.scep.failinfo import FailInfo
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import CHALLENGE, scep_client, scep_operation

from enroll.clock import FrozenClock
from enroll.model import RequestStatus
from enroll.testing.scep_client import csr_with_challenge

MANUAL = {"officer": {"ca": "issuing", "validity": "30d", "approval": "manual",
                      "pending_expiry": "1h", "subject": {"CN": "csr"},
                      "key_types": ["rsa-2048"],
                      "key_usage": ["digital_signature", "key_encipherment"]}}


def test_certpoll_after_pending_expiry_answers_failure(make_scep: Any) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    scep = make_scep(extra_profiles=MANUAL, profile="officer", clock=clock)
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, "laptop", CHALLENGE)
    assert client.read(scep_operation(scep, client.pkcs_req(csr, "tid-e")[0]).content).status \
        is PKIStatus.PENDING
    issuer = scep.ctx.authority.chain("issuing")[0].subject
    poll = client.read(scep_operation(scep, client.cert_poll(issuer, csr.subject,
                                                              "tid-e")).content)
    assert poll.status is PKIStatus.PENDING
    clock.advance(dt.timedelta(minutes=61))
    poll = client.read(scep_operation(scep, client.cert_poll(issuer, csr.subject,
                                                              "tid-e")).content)
    assert poll.status is PKIStatus.FAILURE
    assert poll.certrep.fail_info is FailInfo.BAD_REQUEST
    assert "expired" in (poll.certrep.fail_text or "")
    record = scep.ctx.authority.find_transaction("scep", "default", "tid-e")
    assert record is not None and record.status is RequestStatus.EXPIRED
    assert scep.counts() == (0, 1)
