"""The composition root: everything a front-end or CLI command needs, built once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from enroll.asgi.blocking import BlockingPool, threads_for
from enroll.authority import Authority
from enroll.ca_registry import CARegistry
from enroll.clock import Clock, SystemClock
from enroll.config import Config
from enroll.door import FrontEnd
from enroll.plugin_loader import build_plugin_manager
from enroll.revocation import CRLService, OCSPResponder
from enroll.store import migrate
from enroll.store.db import Database


@dataclass(frozen=True, slots=True)
class AppContext:
    config: Config
    db: Database
    pm: pluggy.PluginManager
    cas: CARegistry
    authority: Authority
    crls: CRLService
    ocsp: OCSPResponder
    clock: Clock
    frontend: FrontEnd
    """What protocol front-ends are handed instead of this context (`enroll.door`)."""


def build_context(config: Config, *, clock: Clock | None = None,
                  extra_plugins: Iterable[object] = (), run_migrations: bool = True,
                  pm: pluggy.PluginManager | None = None) -> AppContext:
    """Open the database (migrating it to head unless told not to), load plugins and
    open every CA. Raises `ConfigError` for anything misconfigured."""
    clock = clock or SystemClock()
    pm = pm or build_plugin_manager(config.plugins, config.disable_plugins, extra_plugins)
    db = Database(config.database_url)
    if run_migrations:
        migrate.upgrade(db, pm)
    else:
        migrate.plugin_schema(pm)  # protocols' tables on the shared metadata
    cas = CARegistry.open(config, db, pm, clock)
    crls = CRLService(db, cas, config.cas, clock)
    authority = Authority(db=db, pm=pm, cas=cas, profiles=dict(config.profiles), clock=clock,
                          crls=crls)
    frontend = FrontEnd(door=authority, config=config, clock=clock, db=db,
                        passphrase=config.ca_passphrase,
                        blocking=BlockingPool(threads_for(db.is_sqlite)))
    return AppContext(config=config, db=db, pm=pm, cas=cas, authority=authority, crls=crls,
                      ocsp=OCSPResponder(db, cas, clock), clock=clock, frontend=frontend)
