"""Database leases: a job that must run once across workers and hosts (revoking
superseded certificates, lifecycle notices) takes its lease first.

`take` is one conditional write: it inserts the lease, or takes it over when it has
expired or is already the caller's. The database decides, so two workers never both
hold it; a worker that dies holding it loses it after `ttl` seconds.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading

from sqlalchemy.exc import IntegrityError

from enroll.store.db import Database


def holder_id() -> str:
    """This process and thread on this host (what a lease records as its holder)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{threading.get_ident() % 100000}"


def take(db: Database, name: str, holder: str, ttl: float, now: dt.datetime) -> bool:
    """Whether `holder` now holds lease `name` until `now` + `ttl` seconds."""
    until = now + dt.timedelta(seconds=ttl)
    with db.write() as tx:
        taken = tx.run(
            "UPDATE scheduler_leases SET holder = ?, expires_at = ? "
            "WHERE name = ? AND (expires_at <= ? OR holder = ?)",
            (holder, tx.when(until), name, tx.when(now), holder))
        if taken:
            return True
        if tx.scalar("SELECT 1 FROM scheduler_leases WHERE name = ?", (name,)) is not None:
            return False
    try:
        with db.write() as tx:
            tx.run("INSERT INTO scheduler_leases (name, holder, expires_at) VALUES (?, ?, ?)",
                   (name, holder, tx.when(until)))
    except IntegrityError:  # another worker inserted it first
        return False
    return True


def release(db: Database, name: str, holder: str) -> None:
    """Give the lease up early (the next worker need not wait out its ttl)."""
    with db.write() as tx:
        tx.run("DELETE FROM scheduler_leases WHERE name = ? AND holder = ?", (name, holder))
