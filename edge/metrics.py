"""Prometheus metrics, correct across Sanic's worker processes.

``tokensea serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the
workers start; each process then writes its samples to its own memory-mapped files and
``/metrics`` sums them (prometheus-client's multiprocess mode). Without that variable
(tests, tools) the metrics live in the process's default registry. A directory made in
the temp dir is removed when the server stops, and one left by a killed server of this
host is removed at the next start.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
access = logging.getLogger("tokensea.access")

LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter("tokensea_requests", "HTTP requests answered", ["route", "model", "status"])
REQUEST_SECONDS = Histogram("tokensea_request_seconds", "Time to answer (to the last byte for streams)", ["route"],
                            buckets=LATENCY)
UPSTREAM_FIRST_BYTE = Histogram("tokensea_upstream_first_byte_seconds", "Provider time to the response headers",
                                ["provider"], buckets=LATENCY)
UPSTREAM_SECONDS = Histogram("tokensea_upstream_seconds", "Provider time to the end of the answer", ["provider"],
                             buckets=LATENCY)
TOKENS = Counter("tokensea_tokens", "Tokens billed", ["model", "kind"])
COST = Counter("tokensea_cost_cents", "Cents billed (for monitoring; the ledger is exact)", ["model"])
LEDGER_BATCH = Histogram("tokensea_ledger_batch_size", "Jobs per group-commit transaction", ["lane"],
                         buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))
LEDGER_COMMIT = Histogram("tokensea_ledger_commit_seconds", "Duration of a group-commit transaction", ["lane"],
                          buckets=LATENCY)
PROJECTION_LAG = Gauge("tokensea_projection_lag_seconds", "Age of the oldest event a projection has not applied",
                       ["projection"], multiprocess_mode="max")


@lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once: ``labels`` validates and locks on every
    call, and a model call touches half a dozen series. Label values are route patterns,
    catalogue model ids, statuses and lane names, so the set is small; the bound is a guard."""
    return metric.labels(*labels)


def observe(request: Any, status: int) -> None:
    """Count a request and its duration (route patterns keep the label set small), and
    write its access log line unless the access log is off."""
    route = request.route.path if request.route is not None else "unmatched"
    model = getattr(request.ctx, "model", "") or ""
    seconds = time.perf_counter() - getattr(request.ctx, "started", time.perf_counter())
    child(REQUESTS, route, model, str(status)).inc()
    child(REQUEST_SECONDS, route).observe(seconds)
    if request.app.ctx.settings.server.access_log:
        access.info(
            "%s %s %d",
            request.method,
            route,
            status,
            extra={
                "request_id": getattr(request.ctx, "request_id", None),
                "method": request.method,
                "route": route,
                "model": model or None,
                "status": status,
                "latency_ms": round(seconds * 1000, 2),
            },
        )


def billed(event: Any) -> None:
    """Tokens and cost of a recorded ``TokensConsumed``."""
    for kind, count in (("input", event.input_tokens), ("output", event.output_tokens),
                        ("cache_read", event.cache_read_tokens), ("cache_write", event.cache_write_tokens)):
        if count:
            child(TOKENS, event.model, kind).inc(count)
    child(COST, event.model).inc(float(event.cost.cents))


def record_lag(projection: str, seconds: float) -> None:
    child(PROJECTION_LAG, projection).set(seconds)


def prepare_multiprocess() -> Path | None:
    """Called once by ``tokensea serve`` before any worker exists: a fresh metrics
    directory. Returns the one it made in the temp dir (the caller removes it at
    shutdown), or None when ``PROMETHEUS_MULTIPROC_DIR`` names the operator's own."""
    chosen = os.environ.get(MULTIPROC_ENV)
    if chosen:
        path = Path(chosen)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        return None
    temp = Path(tempfile.gettempdir())
    for stale in stale_directories(temp):
        shutil.rmtree(stale, ignore_errors=True)
    made = Path(tempfile.mkdtemp(prefix=f"{_owner_prefix()}{os.getpid()}-", dir=temp))
    os.environ[MULTIPROC_ENV] = str(made)
    return made


def _owner_prefix() -> str:
    """``tokensea-metrics-<host>-``: a folder names its host and its server's pid, so a
    later start can tell a dead server's folder from a live one's."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"
    return f"tokensea-metrics-{host}-"


def stale_directories(temp: Path) -> list[Path]:
    """Metrics folders of this host's servers that are no longer running (the server was
    killed before it could remove its own). A folder whose pid is alive, or that another
    host or an older release made, is left alone."""
    prefix = _owner_prefix()
    stale = []
    for candidate in temp.glob(f"{prefix}*"):
        pid_text = candidate.name[len(prefix):].partition("-")[0]
        if candidate.is_dir() and pid_text.isdigit() and not _alive(int(pid_text)):
            stale.append(candidate)
    return stale


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def record_batch(lane: str, size: int, seconds: float) -> None:
    child(LEDGER_BATCH, lane).observe(size)
    child(LEDGER_COMMIT, lane).observe(seconds)


class _Without:
    """A collector's families less those named: what an unauthenticated scrape may see."""

    def __init__(self, inner: Any, hidden: frozenset[str]) -> None:
        self._inner = inner
        self._hidden = hidden

    def collect(self) -> Any:
        return (family for family in self._inner.collect() if family.name not in self._hidden)


# Cents billed per model are the operator's revenue: shown only behind a metrics token.
PRIVATE = frozenset({"tokensea_cost_cents"})


def exposition(*, private: bool = False) -> tuple[bytes, str]:
    """The metrics, summed across processes; ``private`` series only when asked for."""
    if os.environ.get(MULTIPROC_ENV):
        source: Any = multiprocess.MultiProcessCollector(None)
    else:
        source = REGISTRY
    return generate_latest(source if private else _Without(source, PRIVATE)), CONTENT_TYPE_LATEST
