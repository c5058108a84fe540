"""The store: tables, the one transaction API, repository functions.

- `Database` (`db.py`): ``db.write()`` / ``db.read()`` open a `Tx`.
- `Tx`, `Row`, `UnknownColumn` (`transaction.py`): driver-level statements, rows by
  column name, column names checked against fixed lists.
- `UTC_DT` (`columns.py`): the one timestamp column type, and value encodings.
- `queries.py`: the core's repository functions; each protocol keeps its own tables and
  functions in its ``store.py``, over the same `Tx`.
"""

from enroll.store.columns import UTC_DT
from enroll.store.db import Database
from enroll.store.transaction import Row, Tx, UnknownColumn

__all__ = ["UTC_DT", "Database", "Row", "Tx", "UnknownColumn"]
