"""The composition root: everything a front-end or CLI command needs, built once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pluggy

from enroll import ca_certificates
from enroll.asgi.blocking import BlockingPool, threads_for
from enroll.authority import Authority
from enroll.ca_registry import CARegistry
from enroll.clock import Clock, SystemClock
from enroll.config import Config
from enroll.config_sections import check_sections
from enroll.door import FrontEnd
from enroll.ocsp import OCSPResponder
from enroll.plugin_loader import build_plugin_manager
from enroll.rate_limits import RateLimits
from enroll.revocation import CRLService
from enroll.store import migrate
from enroll.store.db import Database, normalise_url


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
                  pm: pluggy.PluginManager | None = None, create: bool = True,
                  unseal: bool | None = None) -> AppContext:
    """Load plugins, check every config section, open the database and every CA.

    With `create` (``enroll init``/``serve``, `enroll.create_app`) the schema is migrated
    to head (unless `run_migrations` is False: a worker whose parent migrated) and
    missing CAs are created. Without it the store is opened as it is: `NotInitialised`
    if it has no schema, an older one, or lacks a CA, and nothing is created. `unseal`
    (default: `create`) opens the CA keys now; otherwise each is opened when it first
    signs, so read-only commands need no passphrase. Raises `ConfigError` for anything
    misconfigured."""
    clock = clock or SystemClock()
    pm = pm or build_plugin_manager(config.plugins, config.disable_plugins, extra_plugins)
    check_sections(config, pm)
    if not create and migrate.sqlite_file_missing(config.database_url):
        raise migrate.not_initialised(normalise_url(config.database_url))
    db = Database(config.database_url)
    try:
        if not create:
            migrate.plugin_schema(pm)
            migrate.require_head(db, pm)
        elif run_migrations:
            migrate.upgrade(db, pm)
        else:
            migrate.plugin_schema(pm)  # protocols' tables on the shared metadata
        cas = CARegistry.open(config, db, pm, clock, create=create,
                              unseal=create if unseal is None else unseal)
        if create:
            # Every CA certificate is a certificate row (revocable), backfilled here.
            ca_certificates.store_all(db, cas, config.cas, clock)
    except BaseException:
        db.dispose()
        raise
    crls = CRLService(db, cas, config.cas, clock)
    authority = Authority(db=db, pm=pm, cas=cas, profiles=dict(config.profiles), clock=clock,
                          crls=crls, recovery_grace=config.recovery_grace, config=config)
    frontend = FrontEnd(door=authority, config=config, clock=clock, db=db,
                        passphrase=config.ca_passphrase,
                        blocking=BlockingPool(threads_for(db.is_sqlite)),
                        limits=RateLimits(db, clock))
    responder = OCSPResponder(db, cas, clock, config.cas)
    authority.revocation_listeners.append(responder.revoked)
    return AppContext(config=config, db=db, pm=pm, cas=cas, authority=authority, crls=crls,
                      ocsp=responder, clock=clock, frontend=frontend)
