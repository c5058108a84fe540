"""CRL numbers come from a counter in the database: they grow across workers and hosts
whatever the clocks say, and start above the wall-clock numbers of older versions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from alembic import command
from cryptography import x509

from enroll.clock import FrozenClock
from enroll.context import AppContext
from enroll.store import migrate, queries
from enroll.store.db import Database


def number(der: bytes) -> int:
    crl = x509.load_der_x509_crl(der)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_numbers_grow_by_one_across_two_workers_even_when_a_clock_goes_back(
        build: Callable[..., AppContext]) -> None:
    now = dt.datetime.now(dt.UTC)
    fast, slow = FrozenClock(now), FrozenClock(now - dt.timedelta(days=3))
    one, two = build(clock=fast), build(clock=slow)  # two hosts, one database
    seen = []
    for ctx in (one, two, one, two, two, one):
        seen.append(number(ctx.crls.regenerate("issuing")))
    assert seen == list(range(seen[0], seen[0] + 6))
    # The stored CRL is the highest-numbered one, whoever signed it last.
    assert number(one.crls.current("issuing")) == seen[-1]
    # Each CA has its own counter.
    assert number(one.crls.regenerate("root")) < seen[-1]


def test_the_counter_never_goes_below_a_stored_crl_number(
        build: Callable[..., AppContext]) -> None:
    ctx = build()
    first = number(ctx.crls.regenerate("issuing"))
    wall_clock = int(ctx.clock.now().timestamp() * 1000)  # what older versions published
    with ctx.db.write() as tx:
        tx.run("UPDATE crls SET number = ? WHERE ca = 'issuing'", (wall_clock,))
    assert first < wall_clock
    assert number(ctx.crls.regenerate("issuing")) == wall_clock + 1


def test_the_migration_starts_the_counter_above_the_published_numbers(
        db_url: str) -> None:
    db = Database(db_url)
    try:
        cfg = migrate.alembic_config(db)
        command.upgrade(cfg, "0005_core_key_blocklist")
        published = 1_764_000_000_123  # a wall-clock CRL number of an older version
        now = dt.datetime.now(dt.UTC)
        with db.write() as tx:
            tx.run("INSERT INTO crls (ca, number, this_update, next_update, der) "
                   "VALUES (?, ?, ?, ?, ?)", ("issuing", published, tx.when(now),
                                              tx.when(now), b"\x30\x00"))
        command.upgrade(cfg, "heads")
        with db.write() as tx:
            assert queries.next_crl_number(tx, "issuing") == published + 1
            assert queries.next_crl_number(tx, "root") == 1
    finally:
        db.dispose()


def test_a_crl_reserved_but_not_stored_leaves_a_gap_never_a_repeat(
        build: Callable[..., AppContext]) -> None:
    ctx = build()
    ca = "issuing"
    a = number(ctx.crls.regenerate(ca))
    with ctx.db.write() as tx:  # a worker reserved a number and died before storing
        queries.next_crl_number(tx, ca)
    b = number(ctx.crls.regenerate(ca))
    assert b == a + 2
