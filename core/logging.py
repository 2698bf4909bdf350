"""JSON logs with the request id in a field of its own, and no patient data in them.

Query strings carry NHS numbers, names and birth dates, patient report links
(``/r/{token}``) are a patient's key to their report, and exception messages may
quote the value that failed. So every log line passes ``RedactQueryFilter`` (a URL's
query is reduced to its parameter names, a link's token to ``[token]``) and
tracebacks keep their frames and the exception's type but not its message. SQL bound
values are kept out by the engine (``core.db``: ``hide_parameters``).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Any
from urllib.parse import parse_qsl

from flask import g, has_request_context
from pythonjsonlogger.json import JsonFormatter

# A "?" that starts a query, in a URL or a request line: up to white space or a quote.
_QUERY = re.compile(r"\?([^\s'\"<>]*)")
# A patient report link's token: the path segment after /r/ (whatever its characters,
# so a link with one character changed is masked too).
_PATIENT_LINK = re.compile(r"/r/[^/\s?#'\"<>]+")
PATIENT_LINK_MASK = "/r/[token]"



def parameter_names(query: str) -> str:
    """The parameter names of a query string, in order, without values: ``a&b``."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(name for name, _value in pairs)


def mask_patient_links(text: str) -> str:
    """``text`` with the token of each patient report link path replaced by ``[token]``."""
    return _PATIENT_LINK.sub(PATIENT_LINK_MASK, text)


def redact_query(text: str) -> str:
    """``text`` with each URL query reduced to its parameter names and each patient
    report link's token masked."""
    return _QUERY.sub(lambda match: "?" + parameter_names(match[1]), mask_patient_links(text))


# The attributes every LogRecord has; anything else on a record came in ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class RedactQueryFilter(logging.Filter):
    """Reduces the query of every URL in a record's message and its structured (``extra``)
    string fields to its parameter names and masks patient report links' tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message or "/r/" in message:
            record.msg, record.args = redact_query(message), None
        for name, value in vars(record).items():  # structured fields too ("path", "url")
            if name not in _RECORD_FIELDS and isinstance(value, str) and (
                    "?" in value or "/r/" in value):
                setattr(record, name, redact_query(value))
        return True


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


class WithheldMessageFormatter(JsonFormatter):
    """JSON lines whose tracebacks name each exception's type but withhold its message,
    which may quote a patient's data (``invalid literal for int(): '943 476 5919'``)."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        exc_type, error, tb = ei
        if error is None:
            return str(super().formatException(ei))
        lines: list[str] = []
        chain: BaseException | None = error
        while chain is not None:
            lines[:0] = [*traceback.format_tb(chain.__traceback__),
                         f"{type(chain).__name__}: (message withheld from the log)\n"]
            chain = chain.__cause__ or chain.__context__
        return "".join(lines).rstrip("\n")


def configure_logging(level: str) -> None:
    """Send JSON lines to stderr; idempotent."""
    root = logging.getLogger()
    if any(getattr(h, "_scanpath", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(WithheldMessageFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(RedactQueryFilter())
    handler._scanpath = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
