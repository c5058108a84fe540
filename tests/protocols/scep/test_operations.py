"""GetCACaps, GetCACert, GetNextCACert, endpoints, config, and concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from enroll.protocols.scep import signeddata
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import CHALLENGE, scep_client, scep_operation, scep_ra

from enroll.errors import ConfigError
from enroll.testing.scep_client import ScepClient, csr_with_challenge


def test_getcacaps_lists_what_the_endpoint_enables(scep: Any) -> None:
    r = scep.get("/scep", params={"operation": "GetCACaps"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    caps = r.text.split()
    assert caps == ["AES", "POSTPKIOperation", "Renewal", "SHA-256", "SHA-512",
                    "SCEPStandard"]


def test_getcacert_with_an_ec_chain_returns_the_rsa_ra_only(scep: Any) -> None:
    r = scep.get("/scep", params={"operation": "GetCACert"})
    assert r.headers["content-type"] == "application/x-x509-ca-ra-cert"
    certs, _ = signeddata.degenerate_contents(r.content)
    assert len(certs) == 1 and isinstance(certs[0].public_key(), rsa.RSAPublicKey)
    issuing = scep.ctx.authority.chain("issuing")[0]
    certs[0].verify_directly_issued_by(issuing)
    assert scep.ctx.authority.lookup(certs[0]) is not None  # the RA is in the inventory


def test_getcacert_chain_mode_returns_ra_and_ca_chain(make_scep: Any) -> None:
    scep = make_scep(getcacert="chain")
    certs, _ = signeddata.degenerate_contents(
        scep.get("/scep", params={"operation": "GetCACert"}).content)
    chain = scep.ctx.authority.chain("issuing")
    assert set(certs) == {scep_ra(scep), *chain} and len(certs) == 3


def test_endpoints_have_their_own_paths_cas_and_challenges(make_scep: Any) -> None:
    scep = make_scep(endpoints={"default": {"challenge": "secret-a"},
                                "org-b": {"challenge": "secret-b"}})
    a, b = scep_client(scep, "/scep"), scep_client(scep, "/scep/org-b")
    assert a.ra != b.ra
    wrong = b.read(scep_operation(scep, b.pkcs_req(csr_with_challenge(b.key, "x", "secret-a"))[0],
                                  "/scep/org-b").content)
    assert wrong.status is PKIStatus.FAILURE
    ok = b.read(scep_operation(scep, b.pkcs_req(csr_with_challenge(b.key, "x", "secret-b"))[0],
                               "/scep/org-b").content)
    assert ok.status is PKIStatus.SUCCESS
    record = scep.ctx.authority.lookup(ok.certificate)
    assert record is not None
    assert scep.ctx.authority.request(record.request_id).endpoint == "org-b"


def test_getnextcacert_during_a_rollover(make_scep: Any) -> None:
    scep = make_scep(next_ca="root")
    assert "GetNextCACert" in scep.get("/scep", params={"operation": "GetCACaps"}).text
    r = scep.get("/scep", params={"operation": "GetNextCACert"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-x509-next-ca-cert"
    signed = signeddata.parse(r.content)
    signeddata.verify(signed, ["sha256"])
    assert signed.signer == scep_ra(scep)
    certs, _ = signeddata.degenerate_contents(signed.content)
    root = scep.ctx.authority.chain("root")[0]
    assert root in certs
    next_ra = next(c for c in certs if c != root)
    next_ra.verify_directly_issued_by(root)


def test_getnextcacert_without_a_rollover_is_404(scep: Any) -> None:
    assert scep.get("/scep", params={"operation": "GetNextCACert"}).status_code == 404


@pytest.mark.parametrize("bad", [{"profile": "nope"}, {"ca": "nope"}, {"colour": "red"},
                                 {"getcacert": "all"}, {"challenge_sha256": "zz"}])
def test_bad_endpoint_settings_fail_start_up_with_the_key(make_scep: Any,
                                                          bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        make_scep(**bad)
    assert info.value.key.startswith("scep.endpoints.default")


def test_twenty_concurrent_pkcsreqs_all_succeed(scep: Any) -> None:
    ra = scep_ra(scep)
    clients = [ScepClient(ra) for _ in range(20)]
    messages = [c.pkcs_req(csr_with_challenge(c.key, f"d{i}", CHALLENGE))[0]
                for i, c in enumerate(clients)]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda m: scep_operation(scep, m), messages))
    replies = [c.read(a.content) for c, a in zip(clients, answers, strict=True)]
    assert all(r.status is PKIStatus.SUCCESS for r in replies)
    assert len({r.certificate.serial_number for r in replies}) == 20
    assert scep.counts() == (20, 20)


def test_ten_concurrent_retries_of_one_transaction_issue_one_certificate(scep: Any) -> None:
    client = scep_client(scep)
    csr = csr_with_challenge(client.key, "racer", CHALLENGE)
    messages = [client.pkcs_req(csr, "one-tid")[0] for _ in range(10)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda m: scep_operation(scep, m), messages))
    replies = [client.read(a.content) for a in answers]
    assert all(r.status is PKIStatus.SUCCESS for r in replies), \
        [r.certrep.fail_text for r in replies]
    assert len({r.certificate for r in replies}) == 1
    assert scep.counts() == (1, 1)
