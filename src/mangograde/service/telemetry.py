"""What the service tells its operators: Prometheus metrics and one JSON log line a request."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LOG = logging.getLogger("mangograde.service")
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"  # set by serve --workers N for its workers


def in_multiprocess_mode() -> bool:
    """True where this process's metrics are written to files that every worker's
    ``/metrics`` reads together (prometheus-client chose so when it was imported)."""
    from prometheus_client import values

    return bool(os.environ.get(MULTIPROCESS)) and values.ValueClass is not values.MutexValue


class Telemetry:
    """The service's metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mangograde_requests", "Requests by route and status", ["route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.photos = Counter(
            "mangograde_photos_graded", "Photos graded, by grade", ["grade"], registry=self.registry
        )
        self.rejected = Counter(
            "mangograde_photos_rejected", "Uploaded photos that could not be read",
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "mangograde_request_seconds", "Request latency by route", ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )  # fmt: skip
        self.unfamiliar = Counter(
            "mangograde_photos_unfamiliar", "Photos unlike the run's training photos",
            registry=self.registry,
        )  # fmt: skip
        self.record_failures = Counter(
            "mangograde_record_failures", "Requests whose gradings could not be recorded",
            registry=self.registry,
        )  # fmt: skip
        self.corrections = Counter(
            "mangograde_corrections", "Operators' corrections recorded",
            registry=self.registry,
        )  # fmt: skip
        self.drift_p = Gauge(
            "mangograde_drift_p", "p-value that the last photos are like the run's held-out "
            "photos (NaN until two photos are in the window)", registry=self.registry,
            multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.drift_p.set(float("nan"))
        self.batch = Histogram(
            "mangograde_batch_photos", "Photos per forward pass (micro-batches)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry,
        )  # fmt: skip

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format: under ``serve --workers N``
        (``PROMETHEUS_MULTIPROC_DIR`` set by serve), every worker's together."""
        from prometheus_client import generate_latest

        if not in_multiprocess_mode():
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        together = CollectorRegistry()
        multiprocess.MultiProcessCollector(together)
        return generate_latest(together)

    def request_done(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)


def log_request(**fields: Any) -> None:
    """One JSON line: what was asked and how it went (never a photo's bytes)."""
    LOG.info(json.dumps({"time": round(time.time(), 3), **fields}, default=str))


def log_detail(event: str, detail: str) -> None:
    """One JSON line of what the log keeps and a client is not told (the database's
    address, other lots' names)."""
    LOG.warning(json.dumps({"time": round(time.time(), 3), "event": event, "detail": detail}))


def configure_logging(level: int = logging.INFO) -> None:
    """Request lines to stderr as they are (already JSON); where a handler is there
    already (one of the embedding application's), to it, at ``level`` unless it set one."""
    if LOG.level == logging.NOTSET:
        LOG.setLevel(level)
    if LOG.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.addHandler(handler)
    LOG.propagate = False
