"""``enroll certs lineage SERIAL|IDENTITY [--json]``: the chain, oldest first, across
doors, with protocol, endpoint, profile, dates, status and why each link was made; an
identity's several chains; bounded walks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from door_drivers import DoorDriver
from test_lineage_links import LINKED

from enroll import lineage
from enroll.cli import lineage as lineage_cli
from enroll.cli.main import build_parser
from enroll.errors import MalformedInput, NotFound
from enroll.model import LINK_REASONS

HOST = "kiosk.corp.example"
IDENTITY = f"san.dns:{HOST}"


class Opened:
    """The `Opener` a command is given, over the test's app."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def context(self, **_: Any) -> Any:
        return self.ctx


def run(d: DoorDriver, target: str, capsys: pytest.CaptureFixture[str], *,
        as_json: bool = False) -> str:
    args = build_parser().parse_args(["certs", "lineage", target,
                                      *(["--json"] if as_json else [])])
    assert args.func is lineage_cli.cmd_certs_lineage
    assert args.func(args, Opened(d.h.ctx)) == 0
    return capsys.readouterr().out


async def three_doors(d: DoorDriver) -> list[str]:
    """SCEP, then EST (linked by identity), then ACME replacing it: three serials."""
    serials = []
    for door in ("scep", "est", "acme"):
        driver = DoorDriver(door, d.h, d.responder)
        answer = await driver.enroll(cn=HOST, dns=[HOST])
        assert answer.cert is not None, answer
        serials.append(format(answer.cert.serial_number, "x"))
    return serials


async def test_the_chain_of_any_serial_oldest_first_as_json(
        make_driver: Any, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_driver("est", LINKED)
    serials = await three_doors(d)
    for serial in serials:  # from the root, the middle or the newest: the same chain
        out = json.loads(run(d, serial, capsys, as_json=True))
        assert out["target"] == serial
        [chain] = out["chains"]
        assert [c["serial"] for c in chain] == serials
        assert [c["protocol"] for c in chain] == ["scep", "est", "acme"]
        assert [c["link"] for c in chain] == [None, "identity", "identity"]
        assert [c["replaces"] for c in chain] == [None, *serials[:2]]
        assert chain[1]["reason"] == LINK_REASONS["identity"]
        assert chain[0]["reason"] == "first certificate of this chain"
        assert {c["endpoint"] for c in chain} == {"default"}
        assert {c["profile"] for c in chain} == {"p"}
        assert {c["identity"] for c in chain} == {IDENTITY}
        assert [c["status"] for c in chain] == ["valid", "valid", "valid"]
        assert chain[0]["not_before"] < chain[0]["not_after"]
    # The serial as openssl prints it (zero-padded bytes, upper case, colons) finds it.
    even = "0" * (len(serials[0]) % 2) + serials[0]
    printed = ":".join(even[i:i + 2] for i in range(0, len(even), 2)).upper()
    [chain] = json.loads(run(d, printed, capsys, as_json=True))["chains"]
    assert chain[0]["serial"] == serials[0]


async def test_an_identity_with_several_chains_as_a_table(
        make_driver: Any, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_driver("est", {k: v for k, v in LINKED.items() if k != "link_renewals"})
    est = DoorDriver("est", d.h, d.responder)
    first = await est.enroll(cn=HOST, dns=[HOST])   # not linked: a second root
    second = await est.enroll(cn=HOST, dns=[HOST])
    assert first.cert is not None and second.cert is not None
    renewed = await est.renew(second.cert, cn=HOST, dns=[HOST])  # EST re-enrolment
    assert renewed.cert is not None, renewed
    out = run(d, IDENTITY, capsys)
    blocks = out.strip().split("\n\n")
    assert blocks[0].startswith("chain 1 of 2 (1 certificate, oldest first)")
    assert blocks[1].startswith("chain 2 of 2 (2 certificates, oldest first)")
    header = blocks[1].splitlines()[1].split()
    assert header == ["SERIAL", "PROTOCOL", "ENDPOINT", "PROFILE", "NOT_BEFORE",
                      "NOT_AFTER", "STATUS", "LINK", "REASON"]
    rows = blocks[1].splitlines()[3:]
    assert rows[0].split()[0] == format(second.cert.serial_number, "x")
    assert rows[1].split()[0] == format(renewed.cert.serial_number, "x")
    assert "credential" in rows[1].split()
    assert LINK_REASONS["credential"] in rows[1]
    assert format(first.cert.serial_number, "x") in blocks[0]
    as_json = json.loads(run(d, IDENTITY, capsys, as_json=True))
    assert [len(c) for c in as_json["chains"]] == [1, 2]


async def test_unknown_targets_and_a_bounded_walk(make_driver: Any) -> None:
    d = make_driver("est", LINKED)
    with d.h.ctx.db.read() as tx:
        with pytest.raises(NotFound):
            lineage.chains_for(tx, "abcdef")
        with pytest.raises(NotFound):
            lineage.chains_for(tx, "san.dns:nobody.corp.example")
        with pytest.raises(MalformedInput):
            lineage.chains_for(tx, "x" * 2000)
    serials = await three_doors(d)
    with d.h.ctx.db.write() as tx:  # a corrupt history: a loop back to the newest
        tx.run("UPDATE certificates SET replaces = ? WHERE serial = ?",
               (serials[2], serials[0]))
    with d.h.ctx.db.read() as tx:
        chain = lineage.chain(tx, serials[1])
    assert [link.serial for link in chain] == [serials[2], serials[0], serials[1]]


async def test_the_walk_stops_at_its_depth(make_driver: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_driver("est", LINKED)
    serials = await three_doors(d)
    monkeypatch.setattr(lineage, "MAX_DEPTH", 2)
    with d.h.ctx.db.read() as tx:
        assert [link.serial for link in lineage.chain(tx, serials[2])] == serials[1:]


def test_the_command_is_registered_under_certs() -> None:
    args = build_parser().parse_args(["certs", "lineage", "san.dns:a.example", "--json"])
    assert (args.target, args.json) == ("san.dns:a.example", True)
