"""Gauges read from the database at scrape time (so every worker reports the same
values, whichever one is scraped): CA certificate expiry and CRL nextUpdate per CA,
pending approvals, certificates expiring within 30 days, identities by renewal state
(`enroll.metrics_identities`). Cheap indexed queries, run at
most once per `CACHE_SECONDS` per process."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from enroll.clock import Clock
from enroll.metrics_identities import identity_states
from enroll.model import CertificateStatus, RequestStatus
from enroll.store.db import Database
from enroll.store.schema import crls

if TYPE_CHECKING:
    from collections.abc import Mapping

    from enroll.ca_registry import CARegistry
    from enroll.profiles import Profile

log = logging.getLogger("enroll.metrics")
CACHE_SECONDS = 5.0
EXPIRING_WITHIN = dt.timedelta(days=30)


class StoreGauges(Collector):
    def __init__(self, db: Database, cas: CARegistry, clock: Clock,
                 profiles: Mapping[str, Profile] | None = None) -> None:
        self.db = db
        self.profiles = dict(profiles or {})
        self.cas = cas
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: list[GaugeMetricFamily] = []
        self._at = -CACHE_SECONDS

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._at >= CACHE_SECONDS:
                try:
                    self._cached = self._read()
                except Exception:  # a scrape must not fail because the database does
                    log.exception("metrics: reading the store gauges failed")
                    return iter(())
                self._at = time.monotonic()
            return iter(self._cached)

    def _read(self) -> list[GaugeMetricFamily]:
        now = self.clock.now()
        ca_expiry = GaugeMetricFamily(
            "enroll_ca_certificate_expiry_seconds",
            "Seconds until the CA certificate's notAfter", labels=["ca"])
        crl_next = GaugeMetricFamily(
            "enroll_crl_next_update_seconds",
            "Seconds until the stored CRL's nextUpdate (negative: overdue)", labels=["ca"])
        for name in self.cas.names():
            cert = self.cas.get(name).certificate
            ca_expiry.add_metric([name], (cert.not_valid_after_utc - now).total_seconds())
        with self.db.read() as tx:
            stored = tx.all("SELECT ca, next_update FROM crls", (), crls)
            pending = tx.scalar("SELECT COUNT(*) FROM requests WHERE status = ?",
                                (RequestStatus.PENDING.value,))
            expiring = tx.scalar(
                "SELECT COUNT(*) FROM certificates WHERE status = ? AND not_after > ? "
                "AND not_after <= ?", (CertificateStatus.VALID.value, tx.when(now),
                                       tx.when(now + EXPIRING_WITHIN)))
            states = identity_states(tx, self.profiles, now)
        for row in sorted(stored, key=lambda r: str(r["ca"])):
            crl_next.add_metric([row["ca"]], (row["next_update"] - now).total_seconds())
        return [
            ca_expiry, crl_next,
            GaugeMetricFamily("enroll_pending_approvals",
                              "Requests waiting for an operator's decision",
                              value=int(pending or 0)),
            GaugeMetricFamily("enroll_certificates_expiring_30d",
                              "Valid certificates whose notAfter is within 30 days",
                              value=int(expiring or 0)),
            states,
        ]
