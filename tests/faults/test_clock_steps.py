"""F7: the engine's clock stepped forward and back around issuance and CRL refresh.

The engine reads time only through its `Clock` (`enroll.clock`); the test injects one
that follows the real clock plus an offset it steps (as NTP stepping a host's clock, or
a host with a skewed clock joining a cluster, would). Whatever the steps:

- every certificate's notBefore is at most the engine's "now" (backdated by the
  profile's ``backdate``, never more, never in the future);
- CRL numbers never go backwards (RFC 5280 §5.2.3: monotonically increasing), even when
  the clock does;
- every certificate issued is stored and revocable, and the CRL lists it once revoked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from harness import CHALLENGE, est_enroll, est_section, scep_client, scep_operation
from harness import scep_section as scep_table

from enroll.model import CertificateStatus
from enroll.testing import make_csr
from enroll.testing.est_client import certs_from
from enroll.testing.scep_client import csr_with_challenge


class SteppedClock:
    """The system clock plus an offset that `step` moves."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def step(self, delta: dt.timedelta) -> None:
        self.offset += delta


STEPS = [dt.timedelta(0), dt.timedelta(hours=2), dt.timedelta(hours=-3),
         dt.timedelta(days=3), dt.timedelta(days=-3, hours=-1), dt.timedelta(minutes=-30)]
"""Forward and back, past the CRL refresh interval and past the start point."""


def _crl_number(h: Any) -> int:
    r = h.get("/crl/issuing.crl")
    assert r.status_code == 200, r.text
    crl = x509.load_der_x509_crl(r.content)
    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def test_f7_clock_stepped_forward_and_back(harness_factory: Any) -> None:
    clock = SteppedClock()
    h = harness_factory(clock=clock, base_url="https://testserver", listener=True,
                        **est_section(), **scep_table())
    backdate = dt.timedelta(seconds=h.ctx.authority.profile("device").backdate)
    device = scep_client(h)
    issued: list[x509.Certificate] = []
    numbers: list[int] = []
    from enroll.protocols.scep.pkimessage import PKIStatus

    for i, step in enumerate(STEPS):
        clock.step(step)
        before = clock.now()
        r = est_enroll(h, make_csr(cn=f"clock{i}.example", dns=[]))
        assert r.status_code == 200, (step, r.text)
        est_cert = certs_from(r.content)[0]
        # A device whose clock agrees with the server's (signingTime within the skew).
        message, _ = device.pkcs_req(csr_with_challenge(device.key, f"clock-dev{i}",
                                                        CHALLENGE), now=clock.now())
        reply = device.read(scep_operation(h, message).content)
        assert reply.status is PKIStatus.SUCCESS, (step, reply.certrep.fail_text)
        after = clock.now()
        for cert in (est_cert, reply.certificate):
            assert cert is not None
            nb = cert.not_valid_before_utc
            assert before - backdate - dt.timedelta(seconds=1) <= nb <= after, (step, nb)
            issued.append(cert)
        numbers.append(_crl_number(h))
        # A revocation re-signs the CRL at the current (stepped) time.
        h.ctx.authority.revoke(est_cert.serial_number, x509.ReasonFlags.superseded,
                               actor="clock-test")
        numbers.append(_crl_number(h))
    assert numbers == sorted(numbers), numbers
    # Every re-signing (a revocation) gave a strictly greater number.
    for before_revoke, after_revoke in zip(numbers[0::2], numbers[1::2], strict=True):
        assert after_revoke > before_revoke, numbers

    # Nothing lost: all stored, all revocable, all on the CRL.
    assert len({c.serial_number for c in issued}) == len(issued)
    for cert in issued:
        record = h.ctx.authority.lookup(cert)
        assert record is not None
        if record.status is CertificateStatus.VALID:
            h.ctx.authority.revoke(cert.serial_number, x509.ReasonFlags.superseded,
                                   actor="clock-test")
    crl = x509.load_der_x509_crl(h.get("/crl/issuing.crl").content)
    listed = {entry.serial_number for entry in crl}
    assert {c.serial_number for c in issued} <= listed
    assert _crl_number(h) >= numbers[-1]


@pytest.mark.parametrize("step", [dt.timedelta(days=-2), dt.timedelta(days=2)])
def test_a_scep_device_whose_clock_disagrees_gets_bad_time_not_an_error(
        harness_factory: Any, step: dt.timedelta) -> None:
    """A step of the server's clock leaves devices with the old time: their signingTime
    is out of the allowed skew, and the answer is failInfo badTime (RFC 8894), stored
    nothing."""
    from enroll.protocols.scep.failinfo import FailInfo
    from enroll.protocols.scep.pkimessage import PKIStatus

    clock = SteppedClock()
    h = harness_factory(clock=clock, **scep_table())
    device = scep_client(h)
    clock.step(step)
    message, _ = device.pkcs_req(csr_with_challenge(device.key, "skewed", CHALLENGE))
    answer = scep_operation(h, message)
    assert answer.status_code == 200
    reply = device.read(answer.content)
    assert reply.status is PKIStatus.FAILURE
    assert reply.certrep.fail_info is FailInfo.BAD_TIME
    assert h.counts() == (0, 0)
