"""Per-endpoint algorithm switches (``algorithms``): AES and SHA-2 only by default,
GetCACaps lists exactly what is on, a switched-off algorithm is a signed badAlg naming
the switch, and nothing is stored for it."""

from __future__ import annotations

from typing import Any

import pytest
from enroll.protocols.scep.failinfo import FailInfo
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import CHALLENGE, Harness, scep_client, scep_operation

from enroll.errors import ConfigError
from enroll.testing.scep_client import csr_with_challenge

MODERN = ["aes128", "aes256", "sha256", "sha512"]
# (client keyword, config switch, how the refusal names it)
LEGACY = [({"cipher": "des"}, "des", "single DES"),
          ({"cipher": "tripledes_3key"}, "3des", "triple DES (DES-EDE3-CBC)"),
          ({"digest": "sha1"}, "sha1", "SHA-1")]


def _caps(h: Harness, path: str = "/scep") -> list[str]:
    r = h.get(path, params={"operation": "GetCACaps"})
    assert r.status_code == 200
    return r.text.split()


def _enroll(h: Harness, **kw: Any) -> Any:
    client = scep_client(h, **kw)
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "alg-device", CHALLENGE))
    r = scep_operation(h, message)
    assert r.status_code == 200, r.text
    return client.read(r.content)


@pytest.mark.parametrize(("kw", "switch", "what"), LEGACY)
def test_the_default_endpoint_refuses_legacy_algorithms_naming_the_switch(
        scep: Harness, kw: dict[str, str], switch: str, what: str) -> None:
    reply = _enroll(scep, **kw)
    assert reply.status is PKIStatus.FAILURE
    assert reply.certrep.fail_info is FailInfo.BAD_ALG
    assert reply.certrep.fail_text == (
        f'{what} is off on this endpoint: add "{switch}" to '
        "scep.endpoints.default.algorithms")
    assert scep.counts() == (0, 0)


def test_getcacaps_lists_only_aes_and_sha2_by_default(scep: Harness) -> None:
    caps = _caps(scep)
    assert caps == ["AES", "POSTPKIOperation", "Renewal", "SHA-256", "SHA-512",
                    "SCEPStandard"]


def test_getcacaps_lists_the_legacy_keywords_that_are_switched_on(make_scep: Any) -> None:
    h = make_scep(endpoints={
        "default": {"challenge": CHALLENGE, "algorithms": [*MODERN, "3des", "sha1"]},
        "des-only": {"challenge": CHALLENGE, "algorithms": ["aes128", "sha256", "des"]},
    })
    assert _caps(h) == ["AES", "DES3", "POSTPKIOperation", "Renewal", "SHA-1", "SHA-256",
                        "SHA-512", "SCEPStandard"]
    # Single DES has no keyword; SHA-512 is off here, so it is not listed.
    assert _caps(h, "/scep/des-only") == ["AES", "POSTPKIOperation", "Renewal", "SHA-256",
                                          "SCEPStandard"]


@pytest.mark.parametrize(("kw", "switch", "what"), LEGACY)
def test_each_legacy_algorithm_works_when_its_switch_is_on_and_only_it(
        make_scep: Any, kw: dict[str, str], switch: str, what: str) -> None:
    h = make_scep(algorithms=[*MODERN, switch])
    reply = _enroll(h, **kw)
    assert reply.status is PKIStatus.SUCCESS, reply.certrep.fail_text
    assert reply.certificate is not None
    assert h.counts() == (1, 1)
    for other_kw, other, _what in LEGACY:
        if other != switch:
            refused = _enroll(h, **other_kw)
            assert refused.certrep.fail_info is FailInfo.BAD_ALG, other
            assert f'add "{other}"' in (refused.certrep.fail_text or "")
    assert h.counts() == (1, 1)


def test_sha512_can_be_switched_off(make_scep: Any) -> None:
    h = make_scep(algorithms=["aes128", "sha256"])
    reply = _enroll(h, digest="sha512")
    assert reply.certrep.fail_info is FailInfo.BAD_ALG
    assert 'add "sha512"' in (reply.certrep.fail_text or "")
    assert h.counts() == (0, 0)


def test_legacy_algorithms_true_is_a_deprecated_alias_for_all_three(
        make_scep: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="enroll.scep"):
        h = make_scep(legacy_algorithms=True)
    assert "legacy_algorithms is deprecated" in caplog.text
    assert "DES3" in _caps(h) and "SHA-1" in _caps(h)
    for kw, _switch, _what in LEGACY:
        assert _enroll(h, **kw).status is PKIStatus.SUCCESS, kw
    assert h.counts() == (3, 3)


def test_legacy_algorithms_false_keeps_the_default(make_scep: Any) -> None:
    h = make_scep(legacy_algorithms=False)
    assert "DES3" not in _caps(h)
    assert _enroll(h, cipher="des").certrep.fail_info is FailInfo.BAD_ALG
    assert h.counts() == (0, 0)


def test_algorithms_from_the_environment_form_a_comma_separated_list(make_scep: Any) -> None:
    h = make_scep(algorithms="aes128, sha256, des")
    assert _enroll(h, cipher="des").status is PKIStatus.SUCCESS


@pytest.mark.parametrize(("bad", "says"), [
    ({"algorithms": [*MODERN, "md5"]}, "MD5 is not supported"),
    ({"algorithms": [*MODERN, "rc2"]}, "unknown algorithm 'rc2'"),
    ({"algorithms": ["aes256", "sha256"]}, '"aes128" is required'),
    ({"algorithms": ["aes128", "sha512"]}, '"sha256" is required'),
    ({"algorithms": MODERN, "legacy_algorithms": True}, "algorithms says what is on"),
])
def test_bad_algorithm_settings_stop_start_up(make_scep: Any, bad: dict[str, Any],
                                              says: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_scep(**bad)
    assert info.value.key.startswith("scep.endpoints.default.")
    assert says in str(info.value)
