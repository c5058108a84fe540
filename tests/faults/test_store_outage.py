"""The store and the doors when the database goes away (the engine fixes F1/F6 need).

- A kept PostgreSQL connection the server closed (restart, cut) is replaced before the
  next transaction: no request fails for it once the server is back.
- While the database is down or cut off, every transaction raises `DatabaseUnavailable`
  (an `Unavailable`) in bounded time, nothing of it is kept, and each door answers its
  protocol's "try later": EST 503 + Retry-After, a SCEP FAILURE CertRep, an ACME
  serverInternal problem with status 503; anything else escaping a handler as
  `Unavailable` is a 503 with Retry-After from `RequestFrame`.
- A bad statement is still a bug (a 500), not an outage.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from faultproxy import FaultProxy
from harness import CHALLENGE, Harness, est_enroll, est_section, scep_client, scep_operation
from harness import scep_section as scep_table
from privatepg import PrivatePostgres
from starlette.responses import Response
from starlette.routing import Route, Router

from enroll.app import create_app
from enroll.asgi.request_frame import RequestFrame
from enroll.errors import DatabaseUnavailable, Unavailable
from enroll.store.db import Database
from enroll.testing import make_csr, test_config
from enroll.testing.scep_client import csr_with_challenge

pytestmark = pytest.mark.slow


def _table(db: Database) -> None:
    with db.write() as tx:
        tx.run("CREATE TABLE t (v integer)")


def test_a_restart_of_postgresql_costs_no_request(private_pg: PrivatePostgres,
                                                   pg_database: str) -> None:
    db = Database(private_pg.url(pg_database))
    try:
        _table(db)
        private_pg.restart()  # every kept connection is closed by the server
        # The first transaction after the restart succeeds: the dead connection is
        # noticed before use and replaced.
        with db.write() as tx:
            tx.run("INSERT INTO t VALUES (1)")
        with db.read() as tx:
            assert tx.scalar("SELECT count(*) FROM t") == 1
    finally:
        db.dispose()


def test_a_database_that_is_down_is_unavailable_then_back(
        private_pg: PrivatePostgres, pg_database: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from enroll.store import transaction

    monkeypatch.setattr(transaction, "_outages", transaction._OutageLog(every=60))
    db = Database(private_pg.url(pg_database))
    try:
        _table(db)
        private_pg.stop()
        try:
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable) as caught, db.write() as tx:
                tx.run("INSERT INTO t VALUES (1)")
            assert time.monotonic() - started < 10
            assert isinstance(caught.value, Unavailable)
            assert "retry later" in caught.value.detail
            assert "127.0.0.1" not in caught.value.detail  # nothing about the server
            for _ in range(3):
                with pytest.raises(DatabaseUnavailable), db.read() as tx:
                    tx.scalar("SELECT 1")
            # The operator's log has the driver's reason, once for the outage.
            warnings = [r for r in caplog.records if r.name == "enroll.store"]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert "OperationalError" in warnings[0].getMessage()
        finally:
            private_pg.start()
        with db.read() as tx:
            assert tx.scalar("SELECT count(*) FROM t") == 0
    finally:
        db.dispose()


def test_a_cut_mid_transaction_keeps_nothing_and_the_next_one_reconnects(
        private_pg: PrivatePostgres, pg_database: str, fault_proxy: FaultProxy) -> None:
    db = Database(private_pg.url(pg_database, port=fault_proxy.port))
    try:
        _table(db)
        with pytest.raises(DatabaseUnavailable), db.write() as tx:
            tx.run("INSERT INTO t VALUES (1)")
            fault_proxy.cut()
            tx.run("INSERT INTO t VALUES (2)")
        fault_proxy.refuse(30)
        with pytest.raises(DatabaseUnavailable), db.read() as tx:
            tx.scalar("SELECT 1")  # the reconnection attempt is refused
        fault_proxy.refuse(0)
        with db.read() as tx:
            assert tx.scalar("SELECT count(*) FROM t") == 0
    finally:
        db.dispose()


def test_a_bad_statement_on_sqlite_is_not_an_outage(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    try:
        with pytest.raises(sqlite3.OperationalError), db.read() as tx:
            tx.scalar("SELECT nonsense FROM nowhere")
        with db.read() as tx:  # the connection is still fine
            assert tx.scalar("SELECT 1") == 1
    finally:
        db.dispose()


async def test_request_frame_answers_an_escaping_unavailable_with_503() -> None:
    def boom(request: object) -> Response:
        raise DatabaseUnavailable("the database is unavailable right now; retry later")

    app = RequestFrame(Router(routes=[Route("/x", boom)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        r = await client.get("/x")
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) > 0
    assert "retry later" in r.text and "Traceback" not in r.text


def test_each_door_answers_try_later_while_postgresql_is_down(
        tmp_path: Path, private_pg: PrivatePostgres, pg_database: str) -> None:
    cfg = test_config(tmp_path / "data", private_pg.url(pg_database),
                      **est_section(), **scep_table())
    h = Harness(create_app(cfg), "https://testserver", listener=True)
    try:
        device = scep_client(h)
        private_pg.stop()
        try:
            r = est_enroll(h, make_csr(cn="down.example", dns=[]))
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) > 0
            assert "retry later" in r.text

            from enroll.protocols.scep.pkimessage import PKIStatus

            csr = csr_with_challenge(device.key, "down-device", CHALLENGE)
            message, _ = device.pkcs_req(csr)
            answer = scep_operation(h, message)
            assert answer.status_code == 200
            reply = device.read(answer.content)
            assert reply.status is PKIStatus.FAILURE
            assert "retry later" in (reply.certrep.fail_text or "")

            health = h.get("/health")
            assert health.status_code == 503
        finally:
            private_pg.start()
        r = est_enroll(h, make_csr(cn="back.example", dns=[]))
        assert r.status_code == 200, r.text
        assert h.counts() == (1, 1)  # the refused attempts stored nothing
    finally:
        h.close()


async def test_acme_answers_server_internal_503_while_postgresql_is_down(
        tmp_path: Path, private_pg: PrivatePostgres, pg_database: str) -> None:
    from enroll.testing.acme_client import AcmeClient, AcmeError

    cfg = test_config(tmp_path / "data", private_pg.url(pg_database))
    h = Harness(create_app(cfg), "https://acme.test", listener=True)
    try:
        client = AcmeClient(h.http, "https://acme.test/acme/directory")
        await client.nonce()  # the directory and a nonce, while the database is up
        client._nonce = await client.nonce()
        private_pg.stop()
        try:
            with pytest.raises(AcmeError) as caught:
                await client.register()
        finally:
            private_pg.start()
        r = caught.value.response
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert caught.value.problem["type"] == "urn:ietf:params:acme:error:serverInternal"
        assert "retry later" in caught.value.problem["detail"]
        await client.register()  # and it works again
    finally:
        await h.http.aclose()
        h.ctx.db.dispose()
