"""JSON logs with the request id in a field of its own."""

from __future__ import annotations

import logging
import sys

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


def configure_logging(level: str) -> None:
    """Send JSON lines to stderr; idempotent."""
    root = logging.getLogger()
    if any(getattr(h, "_scanpath", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    handler.addFilter(_RequestIdFilter())
    handler._scanpath = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
