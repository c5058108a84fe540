"""Prometheus metrics (prometheus-client). One registry per process; with several
workers, scrape each or aggregate at the proxy (docs/operating.md)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

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
