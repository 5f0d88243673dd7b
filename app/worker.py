"""Running queries off viser's event loop: one thread per client, one job at a time, latest job wins.

A client that types faster than grounding runs submits many jobs; only the newest pending one is kept
(older pending ones are dropped, never run), and the job that is already running finishes. Jobs check
``has_pending()`` before publishing so that a stale result is not shown over a newer request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.messages import log_error

Job = Callable[[], None]


class LatestWinsWorker:
    """A daemon thread that runs submitted jobs one at a time, keeping only the latest pending job.

    Exceptions escaping a job go to ``on_error`` and do not stop the worker (jobs should report errors to
    their client themselves); by default they are logged in one line (``app.messages.log_error``).
    """

    def __init__(
        self, name: str = "liftgs-viewer-worker", on_error: Callable[[Exception], None] | None = None
    ) -> None:
        self._on_error = on_error or (lambda error: log_error(name, error))
        self._condition = threading.Condition()
        self._pending: Job | None = None
        self._running = False
        self._closed = False
        self.dropped = 0
        """How many pending jobs were replaced by newer ones before they ran."""
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queues ``job``, replacing (dropping) any job still waiting; ignored after ``close()``."""
        with self._condition:
            if self._closed:
                return
            if self._pending is not None:
                self.dropped += 1
            self._pending = job
            self._condition.notify_all()

    def has_pending(self) -> bool:
        """Whether a newer job is waiting (the running job's result is then stale)."""
        with self._condition:
            return self._pending is not None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Blocks until nothing runs or waits; returns False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self._pending is None and not self._running, timeout)

    def close(self) -> None:
        """Drops the pending job and stops the thread after the running job (does not wait for it)."""
        with self._condition:
            self._closed = True
            self._pending = None
            self._condition.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the thread to end (after ``close()``); returns whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    self._running = False
                    self._condition.notify_all()
                    return
                job, self._pending, self._running = self._pending, None, True
            try:
                job()
            except Exception as error:
                self._on_error(error)
            finally:
                with self._condition:
                    self._running = False
                    self._condition.notify_all()
