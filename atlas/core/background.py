"""Storing results off the render loop's critical path.

Storing a unit is host work (PNG encoding, fsync, JSON): about 4 ms at 64 px on
a CPU, more at 224 px. A GPU renders a VGG16 unit in tens of milliseconds, so
storing in line would leave the GPU idle for a large share of a build.
`BackgroundWriter` runs those jobs on one thread while the next batch renders;
PNG encoding and fsync release the GIL, so the two overlap.

The queue is bounded, so a slow disk slows the build instead of piling results
up in memory. A job's error is raised in the caller at its next `submit` or at
`close`, and nothing already queued is dropped on an error's way out. A kill
loses at most the queued results, which the cache never saw: the next build
renders them again (the cache's atomic writes are unchanged).
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

_STOP = object()


class BackgroundWriter:
    """One writer thread fed through a bounded queue; use as a context manager.

    ``depth`` is how many jobs may wait: with one batch's results per job, two
    keep the disk busy while a batch renders without holding many batches' images.
    """

    def __init__(self, depth: int = 2):
        self._jobs: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="atlas-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job`; blocks while the queue is full; raises a failed job's error."""
        self._raise_if_failed()
        self._jobs.put(job)

    def wait(self) -> None:
        """Block until every job queued so far has run (or been drained after an error);
        raises nothing: the error, if any, comes at the next `submit` or at `close`."""
        self._jobs.join()

    def close(self) -> None:
        """Wait for every queued job, then raise the first error, if any."""
        if self._thread.is_alive():
            self._jobs.put(_STOP)
            self._thread.join()
        self._raise_if_failed()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.close()
            return
        # Already failing: still finish what was queued (those results are good),
        # but let the original error be the one reported.
        try:
            self.close()
        except BaseException:
            pass

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is _STOP:
                    return
                if self._error is not None:
                    continue  # after a failure, drain without writing more
                try:
                    job()
                except BaseException as err:  # surfaced to the caller, never swallowed
                    self._error = err
            finally:
                self._jobs.task_done()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class InlineWriter:
    """The same interface, storing in the caller's thread (for measuring the difference)."""

    def submit(self, job: Callable[[], None]) -> None:
        job()

    def wait(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "InlineWriter":
        return self

    def __exit__(self, *exc) -> None:
        pass


def make_writer(background: bool = True, depth: int = 2):
    return BackgroundWriter(depth) if background else InlineWriter()
