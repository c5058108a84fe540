"""Lifecycle events: ``certificate.expiring``, ``certificate.expired`` and
``migration.deadline``, found in the inventory and emitted through the event hooks
(`enroll.hookspecs.enroll_certificate_expiring` and the others).

`run` is the ``lifecycle`` scheduler job (one worker per interval across hosts, by the
database lease). For each profile it reads the identities whose *current* certificate
crossed one of the profile's ``expiry_notices``, expired since `EXPIRED_LOOKBACK`, or —
for a profile with a ``migration`` — whether its deadline has come, and counts the
stragglers. Each notice is recorded in ``lifecycle_notices`` and committed *before* any
listener hears of it, so it is given at most once ever, even with two workers running
the job at the same time: the one whose insert loses skips it. A worker that dies
between the commit and the listeners loses those notices (at most once, not at least
once: a duplicate expiry e-mail to a whole fleet is the worse failure).

A run stops after `MAX_NOTICES` notices or `RUN_BUDGET` seconds (a slow listener, a
backlog after downtime); the rest waits for the next run, soonest expiry first.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from enroll.clock import Clock
from enroll.config import Config
from enroll.model import CertificateRecord
from enroll.profiles import Profile
from enroll.store import lifecycle_notices as notices
from enroll.store import queries
from enroll.store.db import Database

log = logging.getLogger("enroll.lifecycle")
INTERVAL = 600.0
"""Seconds between two runs of the job."""
MAX_NOTICES = 1000
"""Notices one run gives at most."""
RUN_BUDGET = 30.0
"""Seconds after which a run stops claiming notices (listeners may be slow)."""
EXPIRED_LOOKBACK = dt.timedelta(days=7)
"""How far back ``certificate.expired`` looks: certificates that expired earlier (before
the job first ran, or while every worker was down longer) are not announced."""
BATCH = 100
PURGE_MARGIN = dt.timedelta(days=1)


def expiring_notice(threshold: int) -> str:
    return f"expiring:{threshold}"


EXPIRED = "expired"


def deadline_notice(after: dt.datetime) -> str:
    """The notice of a migration deadline names the deadline, so moving it fires again."""
    return f"migration.deadline:{int(after.timestamp())}"


@dataclass(slots=True)
class Summary:
    """What one run gave (the counts are logged and returned to the caller)."""

    expiring: int = 0
    expired: int = 0
    deadlines: int = 0
    complete: bool = True
    """False when the run stopped at its bound and left notices for the next run."""
    left: int = field(default=MAX_NOTICES, repr=False)
    """Notices this run may still give."""

    @property
    def total(self) -> int:
        return self.expiring + self.expired + self.deadlines


class Lifecycle:
    """The lifecycle job over one store and plugin manager."""

    def __init__(self, db: Database, pm: pluggy.PluginManager, config: Config, clock: Clock,
                 *, max_notices: int = MAX_NOTICES, budget: float = RUN_BUDGET,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.pm = pm
        self.config = config
        self.clock = clock
        self.max_notices = max_notices
        self.budget = budget
        self._monotonic = monotonic

    def run(self) -> Summary:
        """One pass over every profile; see the module docstring."""
        now = self.clock.now()
        summary = Summary(left=self.max_notices)
        stop_at = self._monotonic() + self.budget
        profiles = list(self.config.profiles.values())
        # Each run starts at another profile, so a backlog in one (a first start over a
        # big fleet) does not hold the others' notices back run after run.
        start = int(now.timestamp() // INTERVAL) % max(1, len(profiles))
        for profile in profiles[start:] + profiles[:start]:
            if not self._profile(profile, now, summary, stop_at):
                summary.complete = False
                break
        self._purge(now)
        if summary.total:
            log.info("lifecycle: %d expiring, %d expired, %d migration deadline notices%s",
                     summary.expiring, summary.expired, summary.deadlines,
                     "" if summary.complete else " (more next run)")
        return summary

    def _purge(self, now: dt.datetime) -> None:
        """Forget certificate notices too old to matter: a certificate leaves every
        window by its notAfter + `EXPIRED_LOOKBACK`, at most the largest threshold after
        its first notice. Migration deadlines are kept (they are per profile, few)."""
        largest = max((max(p.fleet.expiry_notices, default=0)
                       for p in self.config.profiles.values()), default=0)
        before = now - dt.timedelta(seconds=largest) - EXPIRED_LOOKBACK - PURGE_MARGIN
        with self.db.write() as tx:
            notices.purge(tx, before)

    def _profile(self, profile: Profile, now: dt.datetime, summary: Summary,
                 stop_at: float) -> bool:
        """Give `profile`'s due notices; False when the run's bound was reached."""
        migration = profile.fleet.migration
        if migration is not None and now >= migration.after:
            notice = deadline_notice(migration.after)
            with self.db.write() as tx:
                claimed = notices.claim(tx, profile.name, notice, now)
                count = (notices.stragglers(tx, profile.name, migration.to,
                                            migration.endpoint, now) if claimed else 0)
            if claimed:
                summary.deadlines += 1
                self._emit("enroll_migration_deadline", profile=profile,
                           migration=migration, stragglers=count, config=self.config)
        # Windows between consecutive thresholds (descending): a certificate is due the
        # notice of the nearest threshold it is inside, so one first seen with 5 days
        # left hears "7 days" only, never "30 days" afterwards.
        thresholds = profile.fleet.expiry_notices
        bounds = [*thresholds[1:], 0]
        for threshold, lower in zip(thresholds, bounds, strict=True):
            done = self._windows(
                profile, expiring_notice(threshold), now + dt.timedelta(seconds=lower),
                now + dt.timedelta(seconds=threshold), now, summary, stop_at,
                functools.partial(self._expiring, threshold=threshold, profile=profile,
                                  now=now),
                "expiring")
            if not done:
                return False
        return self._windows(
            profile, EXPIRED, now - EXPIRED_LOOKBACK, now, now, summary, stop_at,
            lambda cert: self._expired(cert, profile),
            "expired")

    def _expiring(self, cert: CertificateRecord, threshold: int, profile: Profile,
                  now: dt.datetime) -> bool:
        """Announce `cert` crossing `threshold`; not when it was born inside it (a
        30-day certificate never crossed "30 days left": its notice is recorded, not
        sent, so short-lived certificates do not announce their expiry on issuance)."""
        lifetime = (cert.not_after - cert.not_before).total_seconds() - profile.backdate
        if lifetime <= threshold:
            return False
        self._emit("enroll_certificate_expiring", certificate=cert,
                   remaining=max(0, int((cert.not_after - now).total_seconds())),
                   threshold=threshold, profile=profile, config=self.config)
        return True

    def _expired(self, cert: CertificateRecord, profile: Profile) -> bool:
        self._emit("enroll_certificate_expired", certificate=cert, profile=profile,
                   config=self.config)
        return True

    def _windows(self, profile: Profile, notice: str, after: dt.datetime,
                 until: dt.datetime, now: dt.datetime, summary: Summary, stop_at: float,
                 emit: Callable[[CertificateRecord], bool], counter: str) -> bool:
        """Claim and emit `notice` for every identity of `profile` whose current
        certificate expires in (`after`, `until`], batch by batch (`emit` says whether
        it announced the certificate or only recorded the notice)."""
        while True:
            if summary.left <= 0 or self._monotonic() >= stop_at:
                return False
            limit = min(BATCH, summary.left)
            with self.db.write() as tx:
                serials = notices.due(tx, profile.name, after, until, notice, limit)
                claimed = [s for s in serials if notices.claim(tx, s, notice, now)]
                records = [r for r in (queries.get_certificate(tx, s) for s in claimed)
                           if r is not None]
            summary.left -= len(claimed)
            announced = sum(1 for record in records if emit(record))
            setattr(summary, counter, getattr(summary, counter) + announced)
            if len(serials) < limit:
                return True

    def _emit(self, hook: str, **kwargs: Any) -> None:
        """After commit, each listener on its own (as `Authority` emits its events): a
        failing listener is logged and does not hide the notice from the others."""
        emit(self.pm, hook, **kwargs)


def emit(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> None:
    impls: Iterable[Any] = getattr(pm.hook, hook).get_hookimpls()
    for impl in impls:
        try:
            impl.function(**{name: kwargs[name] for name in impl.argnames})
        except Exception:
            log.exception("event hook %s of plugin %s failed", hook, impl.plugin_name)
