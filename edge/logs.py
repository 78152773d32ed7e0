"""Structured logs: one JSON object per line on stderr, never a secret.

Request lines carry the request id, route, model, status and latency. Messages pass
through a filter that masks anything shaped like a TokenSea key (``tsk-…``) or a
provider key (``sk-…``), so a secret that slips into an exception text still never
reaches a log.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any

import orjson

SECRET = re.compile(r"\b(tsk|sk|sk-ant|sk-proj)-[A-Za-z0-9_\-]{8,}")
FIELDS = ("request_id", "route", "method", "model", "status", "latency_ms", "user_id", "key_id")


def mask(text: str) -> str:
    return SECRET.sub(lambda m: f"{m.group(1)}-***", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for field in FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["error"] = mask(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
