"""A background thread that does one round of work at a fixed interval.

The engine of ScanPath's in-process workers (analysis jobs, notification
deliveries): their state lives in the database, so the thread only polls.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Poller(threading.Thread):
    """Calls :meth:`tick` every ``interval`` seconds until :meth:`stop`.

    A tick that raises is logged and the next one runs: the worker outlives
    any one failure (a database restart, a bad row).
    """

    def __init__(self, name: str, interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:  # the worker outlives any one failure
                log.exception("worker tick failed", extra={"worker": self.name})
            self.stopping.wait(self.interval)

    def tick(self) -> None:
        """One round of work; subclasses say what."""
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
