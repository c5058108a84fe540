"""Prometheus metrics (prometheus-client).

With several workers (`enroll serve --workers N`) the serve parent sets
``PROMETHEUS_MULTIPROC_DIR`` for every worker (`prepare_multiprocess`), so each
worker's counters and histograms live in files there and a scrape of any worker sums
them all (prometheus-client's multiprocess mode). Gauges about the store are read from
the database at scrape time (`enroll.metrics_store`), the same whichever worker answers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("enroll_http_requests", "HTTP requests by protocol and status class",
                   ["protocol", "status"], registry=REGISTRY)
LATENCY = Histogram("enroll_http_request_duration_seconds", "HTTP request latency",
                    ["protocol"], registry=REGISTRY,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                             5, 10))
ISSUANCES = Counter("enroll_issuances", "Certificates issued", ["protocol", "profile"],
                    registry=REGISTRY)
PENDING = Counter("enroll_pending", "Requests sent to manual approval", ["protocol", "profile"],
                  registry=REGISTRY)
REJECTIONS = Counter("enroll_rejections", "Requests refused, by error class",
                     ["protocol", "reason"], registry=REGISTRY)
REVOCATIONS = Counter("enroll_revocations", "Certificates revoked", ["protocol"],
                      registry=REGISTRY)
ISSUANCE_LATENCY = Histogram("enroll_issuance_duration_seconds",
                             "Core pipeline latency (CSR in, stored certificate out)",
                             ["protocol"], registry=REGISTRY,
                             buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25, 1))

OCSP_RESPONSES = Counter("enroll_ocsp_responses", "OCSP answers: stored (no signature), "
                         "signed, unauthorized, malformed", ["answer"], registry=REGISTRY)
OCSP_SIGNATURES = Counter("enroll_ocsp_signatures", "OCSP responses signed, per CA", ["ca"],
                          registry=REGISTRY)


def observe_outcome(protocol: str, profile: str, outcome: Any, seconds: float) -> None:
    from enroll.model import Issued, Pending

    if isinstance(outcome, Issued):
        ISSUANCES.labels(protocol, profile).inc()
        ISSUANCE_LATENCY.labels(protocol).observe(seconds)
    elif isinstance(outcome, Pending):
        PENDING.labels(protocol, profile).inc()


_REQUEST_SERIES: dict[tuple[str, int], tuple[Any, Any]] = {}


def observe_request(protocol: str, status: int, seconds: float) -> None:
    """Count one HTTP request and its latency (label children cached: `labels()` costs
    more than the observation itself)."""
    key = (protocol, status // 100)
    series = _REQUEST_SERIES.get(key)
    if series is None:
        series = _REQUEST_SERIES[key] = (REQUESTS.labels(protocol, f"{key[1]}xx"),
                                         LATENCY.labels(protocol))
    series[0].inc()
    series[1].observe(seconds)


# -- several workers ----------------------------------------------------------------------

def prepare_multiprocess(default_dir: Path) -> Path:
    """Before starting workers: the directory their metrics share (the operator's
    ``PROMETHEUS_MULTIPROC_DIR`` or `default_dir`), emptied of a previous run's files and
    exported to the workers' environment. Must run before any worker imports
    prometheus-client (the spawned workers do so after this)."""
    path = Path(os.environ.get(MULTIPROC_ENV) or default_dir)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def worker_exited(pid: int) -> None:
    """After a worker exits: drop its live-gauge files (its counters stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def scrape(*extra: Collector) -> bytes:
    """The exposition text: this process's metrics, or every worker's summed in
    multiprocess mode, then the `extra` collectors (read at scrape time)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    scraped = CollectorRegistry(auto_describe=False)
    for collector in extra:
        scraped.register(collector)
    return generate_latest(registry) + generate_latest(scraped)
