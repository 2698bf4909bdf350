"""gunicorn settings for ``scanpath serve``: its own logs as JSON, like the rest.

The access log's message is the request line and its outcome; the JSON
formatter (python-json-logger, as in ``core.logging``) adds time, level and
logger, so every line an operator collects is one JSON object.
"""

access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
accesslog = "-"
errorlog = "-"
# Recent gunicorn opens a control socket under the user's home; ScanPath is
# managed by signals and its process manager, so nothing is left behind there.
control_socket_disable = True
_JSON = {"()": "pythonjsonlogger.json.JsonFormatter",
         "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
         "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    # gunicorn merges this into its defaults one key deep, so "handlers" here
    # replaces theirs and their "root" (which names their "console") must go.
    "root": {"level": "INFO", "handlers": []},
    "formatters": {"json": _JSON},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                           "stream": "ext://sys.stderr"},
                 "stdout": {"class": "logging.StreamHandler", "formatter": "json",
                           "stream": "ext://sys.stdout"}},
    "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": "INFO",
                                   "propagate": False},
                "gunicorn.access": {"handlers": ["stdout"], "level": "INFO",
                                    "propagate": False}},
}
