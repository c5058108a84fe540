"""A certificate's lineage: the chain of certificates that renewed one another,
whatever door issued each, oldest first, and why each link was made.

A chain is followed through ``replaces`` (back to its root) and ``superseded_by``
(forward to the newest); an identity may hold several chains (certificates issued
before its profile linked renewals, or to a device that enrolled afresh). Every walk is
bounded (`MAX_DEPTH` links, `MAX_CERTIFICATES` per identity) so a corrupt or very long
history cannot make one query unbounded."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from enroll.crypto.serials import parse_serial_hex
from enroll.errors import MalformedInput, NotFound
from enroll.model import LINK_REASONS
from enroll.store import lineage
from enroll.store.transaction import Tx

MAX_DEPTH = 256
MAX_CERTIFICATES = 1000
MAX_ARGUMENT = 1024


@dataclass(frozen=True, slots=True)
class Link:
    """One certificate of a chain."""

    serial: str
    protocol: str
    endpoint: str | None
    profile: str
    identity: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    status: str
    replaces: str | None
    link: str | None
    """Why it links to `replaces` (`LINK_REASONS`); None for a chain's root."""

    @property
    def reason(self) -> str:
        """The human text of `link`."""
        if self.replaces is None:
            return "first certificate of this chain"
        if self.link is None:
            return "renewal (recorded before link reasons were kept)"
        return LINK_REASONS.get(self.link, self.link)

    def as_json(self) -> dict[str, Any]:
        return {"serial": self.serial, "protocol": self.protocol,
                "endpoint": self.endpoint, "profile": self.profile,
                "identity": self.identity, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "status": self.status,
                "replaces": self.replaces, "link": self.link if self.replaces else None,
                "reason": self.reason}


def _link(row: dict[str, Any]) -> Link:
    return Link(serial=row["serial"], protocol=row["protocol"], endpoint=row["endpoint"],
                profile=row["profile"], identity=row["identity"],
                not_before=row["not_before"], not_after=row["not_after"],
                status=row["status"], replaces=row["replaces"],
                link=row["link"] if row["replaces"] else None)


def chain(tx: Tx, serial: str) -> list[Link]:
    """The chain `serial` belongs to, oldest first; empty if no such certificate."""
    start = lineage.link_row(tx, serial)
    if start is None:
        return []
    seen = {start["serial"]}
    back = _walk(tx, start, "replaces", seen)
    forward = _walk(tx, start, "superseded_by", seen)
    return [_link(r) for r in [*reversed(back), start, *forward]]


def _walk(tx: Tx, start: dict[str, Any], column: str, seen: set[str]) -> list[dict[str, Any]]:
    """The rows reached from `start` by following `column` (``replaces``: back,
    ``superseded_by``: forward), nearest first; stops at a loop (`seen`, shared by both
    directions) or after `MAX_DEPTH` certificates in all."""
    rows: list[dict[str, Any]] = []
    row = start
    while row[column] and len(seen) < MAX_DEPTH:
        following = lineage.link_row(tx, row[column])
        if following is None or following["serial"] in seen:
            break
        seen.add(following["serial"])
        rows.append(following)
        row = following
    return rows


def chains_of_identity(tx: Tx, identity: str) -> list[list[Link]]:
    """Every chain holding a certificate of `identity`, ordered by their oldest
    certificate (a chain may reach certificates of another identity when a renewal
    changed it)."""
    found: list[list[Link]] = []
    seen: set[str] = set()
    for row in lineage.rows_of_identity(tx, identity, MAX_CERTIFICATES):
        if row["serial"] in seen:
            continue
        links = chain(tx, row["serial"])
        seen.update(link.serial for link in links)
        found.append(links)
    return found


def chains_for(tx: Tx, target: str) -> list[list[Link]]:
    """The chains of the identity `target` if it has certificates, else the chain of
    the serial `target`."""
    if len(target) > MAX_ARGUMENT:
        raise MalformedInput("argument too long")
    found = chains_of_identity(tx, target)
    if found:
        return found
    try:
        serial = parse_serial_hex(target)
    except ValueError:
        raise NotFound(f"no certificate of identity {target[:96]!r}") from None
    one = chain(tx, serial)
    if not one:
        raise NotFound(f"no certificate with serial {serial}")
    return [one]
