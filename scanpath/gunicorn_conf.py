"""gunicorn settings for ``scanpath serve``: JSON logs without query values, request
limits answered as OperationOutcomes, and workers that die with their master.

The access log's message is the method, the path and the query's parameter names
(never their values: they hold NHS numbers and names), the status, the size and the
time; the JSON formatter (python-json-logger, as in ``core.logging``) adds time,
level and logger, so every line an operator collects is one JSON object.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from gunicorn import util
from gunicorn.glogging import Logger

access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
accesslog = "-"
errorlog = "-"
logger_class = "scanpath.gunicorn_conf.RedactingLogger"
# Recent gunicorn opens a control socket under the user's home; ScanPath is
# managed by signals and its process manager, so nothing is left behind there.
control_socket_disable = True
# The request limits (README "Limits"): gunicorn refuses past them before the app
# sees the request; the answer is an OperationOutcome (_operation_outcome_error).
limit_request_line = 8190  # method, URL and version: gunicorn's largest bounded value
limit_request_field_size = 8190  # one header line
limit_request_fields = 100
# X-Forwarded-Proto and the like are trusted from no address (gunicorn trusts 127.0.0.1 by
# default): TLS and addresses are known from SCANPATH_PUBLIC_BASE_URL (README, Security).
forwarded_allow_ips = ""
_JSON = {"()": "core.logging.WithheldMessageFormatter",
         "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
         "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    # gunicorn merges this into its defaults one key deep, so "handlers" here
    # replaces theirs and their "root" (which names their "console") must go.
    "root": {"level": "INFO", "handlers": []},
    "formatters": {"json": _JSON},
    "filters": {"redact": {"()": "core.logging.RedactQueryFilter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                           "stream": "ext://sys.stderr", "filters": ["redact"]},
                 "stdout": {"class": "logging.StreamHandler", "formatter": "json",
                           "stream": "ext://sys.stdout", "filters": ["redact"]}},
    "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": "INFO",
                                   "propagate": False},
                "gunicorn.access": {"handlers": ["stdout"], "level": "INFO",
                                    "propagate": False}},
}

class RedactingLogger(Logger):
    """gunicorn's logger, with the query string reduced to its parameter names in every
    access-log atom that carries it (request line, query, referrer), and a patient
    report link's token masked in every atom (``r``, ``U``, ``f``, the environ's)."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any],
              request_time: datetime.timedelta) -> dict[str, Any]:
        from core.logging import mask_patient_links, parameter_names, redact_query

        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        names = parameter_names(environ.get("QUERY_STRING", ""))
        path = mask_patient_links(environ.get("PATH_INFO", ""))
        atoms["U"] = path
        atoms["r"] = f"{environ['REQUEST_METHOD']} {path}{'?' + names if names else ''} " \
            f"{environ.get('SERVER_PROTOCOL', '')}".rstrip()
        atoms["q"] = names
        atoms["f"] = redact_query(atoms.get("f", "-"))
        # Every other atom that may hold the path ({raw_uri}e, {path_info}e, headers).
        return {name: mask_patient_links(value) if isinstance(value, str) else value
                for name, value in atoms.items()}


def post_fork(server: Any, _worker: Any) -> None:
    """In each worker: die with the master (``scanpath.process``), so that a ``kill -9``
    of the master frees the port at once; answer gunicorn's own refusals in FHIR."""
    from scanpath.process import die_with_parent

    die_with_parent(server.pid)
    util.write_error = _operation_outcome_error


def _operation_outcome_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's error answer (a request line or header past the limits, a malformed
    request) as an OperationOutcome with ScanPath's security headers, not an HTML page.

    gunicorn has no hook for this body, so ``util.write_error`` is replaced in workers.
    """
    from core.errors import Issue, operation_outcome
    from core.web import HTTP_ISSUE_CODES, SECURITY_HEADERS

    outcome = operation_outcome([Issue(f"{reason}: {mesg}" if mesg else reason,
                                       HTTP_ISSUE_CODES.get(status_int, "exception"))])
    body = json.dumps(outcome).encode()
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Connection": "close",
               "Content-Type": "application/fhir+json", "Content-Length": str(len(body))}
    head = f"HTTP/1.1 {status_int} {reason}\r\n" + \
        "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    util.write_nonblock(sock, head.encode("latin-1") + body)
