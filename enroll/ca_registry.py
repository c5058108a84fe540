"""Opening the configured CAs through the CA-backend hook, parents first."""

from __future__ import annotations

from collections.abc import Mapping

import pluggy
from sqlalchemy.exc import IntegrityError

from enroll.ca import CABackend
from enroll.clock import Clock
from enroll.config import CASettings, Config
from enroll.errors import ConfigError, NotFound, NotInitialised
from enroll.model import StoredCA
from enroll.store import queries
from enroll.store.db import Database


class DatabaseCAStore:
    """`enroll.ca.CAStore` over the ``cas`` table."""

    def __init__(self, db: Database, clock: Clock, *, create: bool = True) -> None:
        self._db = db
        self._clock = clock
        self._create = create

    def get(self, name: str) -> StoredCA | None:
        with self._db.read() as tx:
            return queries.get_ca(tx, name)

    def put(self, ca: StoredCA) -> StoredCA:
        if not self._create:
            raise missing_ca(ca.name)
        try:
            with self._db.write() as tx:
                queries.insert_ca(tx, ca, self._clock.now())
                queries.add_audit(tx, at=self._clock.now(), type="ca.created",
                                  actor="system", details={
                                      "ca": ca.name, "backend": ca.backend,
                                      "subject": ca.certificate.subject.rfc4514_string(),
                                      "serial": format(ca.certificate.serial_number, "x")})
            return ca
        except IntegrityError:
            # Another worker created it first; everyone uses the stored one.
            existing = self.get(ca.name)
            if existing is None:  # pragma: no cover - would mean the insert failed otherwise
                raise
            return existing


def missing_ca(name: str) -> NotInitialised:
    return NotInitialised(f"CA {name!r} is configured but not in the database: run "
                          '"enroll init" or "enroll serve" first')


def _ordered(cas: Mapping[str, CASettings]) -> list[CASettings]:
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        parent = cas[name].parent
        if parent is not None:
            visit(parent)
        done.append(name)

    for name in cas:
        visit(name)
    return [cas[n] for n in done]


class CARegistry:
    def __init__(self, backends: Mapping[str, CABackend]) -> None:
        self._backends = dict(backends)

    @classmethod
    def open(cls, config: Config, db: Database, pm: pluggy.PluginManager,
             clock: Clock, *, create: bool = True, unseal: bool = True) -> CARegistry:
        """Open every CA (see the `enroll_ca_backend` hook for `create` and `unseal`)."""
        store = DatabaseCAStore(db, clock, create=create)
        backends: dict[str, CABackend] = {}
        for settings in _ordered(config.cas):
            parent = backends[settings.parent] if settings.parent else None
            backend = pm.hook.enroll_ca_backend(name=settings.name, settings=settings,
                                                store=store, parent=parent, config=config,
                                                create=create, unseal=unseal)
            if backend is None:
                raise ConfigError(f"cas.{settings.name}.backend",
                                  f"no plugin provides CA backend {settings.backend!r}")
            backends[settings.name] = backend
        return cls(backends)

    def get(self, name: str) -> CABackend:
        try:
            return self._backends[name]
        except KeyError:
            raise NotFound(f"no CA named {name!r}") from None

    def names(self) -> list[str]:
        return list(self._backends)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._backends.values())
