"""The in-process scheduler of the embedded default: the beat schedule without a broker.

`make run` has no Redis, and a local broker (Celery's filesystem or SQL transports) would add a
queue directory or a dependency, a worker and a beat process to a setup meant to be one
command on a bare machine. So `manage.py run_jobs` reads the same CELERY_BEAT_SCHEDULE and runs
each job in its own process with Task.apply(): the same job code as a worker, minus the queue.
Production keeps beat + workers (docs/operations.md).
"""

import logging
import threading
import time
from datetime import timedelta

logger = logging.getLogger(__name__)


def interval_seconds(schedule):
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    run_every = getattr(schedule, "run_every", None)
    if run_every is not None:
        return run_every.total_seconds()
    return float(schedule)


class InProcessScheduler:
    """Runs every entry of a beat schedule when it falls due; every job once at start."""

    def __init__(self, *, app, schedule, clock=time.monotonic):
        self.app = app
        self.schedule = schedule
        self.clock = clock
        self.next_run = dict.fromkeys(schedule, clock())

    def run_job(self, name):
        entry = self.schedule[name]
        task = self.app.tasks.get(entry["task"])
        if task is None:
            logger.warning("run_jobs: %s: no task named %s is installed; skipped", name, entry["task"])
            return None
        result = task.apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
        if result.failed():
            logger.error("run_jobs: %s failed:\n%s", name, result.traceback)
        else:
            logger.info("run_jobs: %s -> %s", name, result.result)
        return result

    def run_pending(self):
        """Run the jobs that are due; return the seconds until the next one is."""
        for name, entry in self.schedule.items():
            if self.clock() >= self.next_run[name]:
                # Scheduled from the start of the run, so a slow job does not drift its successors.
                self.next_run[name] = self.clock() + interval_seconds(entry["schedule"])
                self.run_job(name)
        return max(0.0, min(self.next_run.values()) - self.clock())

    def run_forever(self, stop=None):
        stop = stop or threading.Event()
        while not stop.is_set():
            stop.wait(self.run_pending())
