"""Transactions for ACME's repository (`store`): the core's raw DBAPI transactions.

SQLAlchemy Core costs 200-400 µs of Python per statement and an ACME request runs
several, so the repository talks to the driver through `enroll.store.raw`, which
encodes values exactly as SQLAlchemy does for the same columns. On SQLite every write
transaction — ACME's and the core's, in every worker — queues on the database's
`enroll.store.writer_lock.WriterLock`.
"""

from __future__ import annotations

from enroll.store.raw import RawTx as Tx
from enroll.store.raw import raw_read as read
from enroll.store.raw import raw_write as write

__all__ = ["Tx", "read", "write"]
