"""Every periodic job run is measured and logged, whichever process runs it (a Celery worker, or
`manage.py run_jobs` through Task.apply()): Celery's task_prerun/task_postrun signals fire for both,
so no job module needs a decorator and a job added tomorrow is covered too."""

import collections
import logging
import os
import threading
import time

from celery import signals
from celery.exceptions import TimeLimitExceeded

from orchestrator.telemetry import metrics
from orchestrator.telemetry.logs import current_trace_id

logger = logging.getLogger("orchestrator.job")

_runs = threading.local()
# The ids of the last jobs reported killed at their time limit, in the worker's main process.
_killed: collections.deque = collections.deque(maxlen=1000)
_killed_lock = threading.Lock()


def rows_touched(retval):
    """Our jobs return how many rows they changed (an int); anything else reports none."""
    if isinstance(retval, bool) or not isinstance(retval, int) or retval < 0:
        return 0
    return retval


@signals.task_prerun.connect
def _job_started(task_id=None, task=None, **kwargs):
    started = getattr(_runs, "started", None)
    if started is None:
        started = _runs.started = {}
    started[task_id] = (time.perf_counter(), current_trace_id.set(task_id or "-"))


@signals.task_postrun.connect
def _job_finished(task_id=None, task=None, retval=None, state=None, **kwargs):
    started, trace_token = getattr(_runs, "started", {}).pop(task_id, (None, None))
    if started is None:
        return
    duration = time.perf_counter() - started
    outcome = "success" if state == "SUCCESS" else "failure"
    rows = rows_touched(retval) if outcome == "success" else 0
    job = task.name if task is not None else "unknown"
    try:
        _measure(job, outcome=outcome, duration=duration, rows=rows)
        logger.info(
            "job %s %s in %.1fms, %d rows",
            job,
            outcome,
            duration * 1000,
            rows,
            extra=_fields(job, outcome=outcome, state=state, duration=duration, rows=rows),
        )
    finally:
        _restore_trace_id(trace_token)


@signals.task_failure.connect
def _job_killed_at_its_time_limit(sender=None, task_id=None, exception=None, **kwargs):
    """A job killed at its hard time limit (JOB_TIME_LIMIT_SECONDS) never reaches task_postrun: its
    process is gone. The worker's main process reports it here. Every other failure is reported by
    _job_finished, in the process that ran the job."""
    if not isinstance(exception, TimeLimitExceeded):
        return
    # Celery sends task_failure twice for one hard time limit (its timeout handler, then the failed
    # result): counted and logged once.
    with _killed_lock:
        if task_id in _killed:
            return
        _killed.append(task_id)
    job = getattr(sender, "name", None) or "unknown"
    limit = exception.args[0] if exception.args and isinstance(exception.args[0], int | float) else 0
    _measure(job, outcome="failure", duration=limit)
    logger.error(
        "job %s killed at its time limit of %s s; it runs again at its next beat",
        job,
        limit,
        extra={**_fields(job, outcome="failure", state="TIME_LIMIT", duration=limit), "job_id": task_id},
    )


def _measure(job, *, outcome, duration, rows=0):
    """One run of `job` in the job metrics."""
    if not metrics.enabled():
        return
    metrics.job_runs.labels(job=job, outcome=outcome).inc()
    metrics.job_duration.labels(job=job).observe(duration)
    if rows:
        metrics.job_rows.labels(job=job).inc(rows)
    if outcome == "success":
        metrics.job_last_success.labels(job=job).set(time.time())


def _fields(job, *, outcome, state, duration, rows=0):
    """The structured fields of a run's log line."""
    return {
        "event": "job",
        "job": job,
        "outcome": outcome,
        "state": state,
        "duration_ms": round(duration * 1000, 3),
        "rows": rows,
    }


def _restore_trace_id(token):
    try:
        current_trace_id.reset(token)
    except ValueError:
        # Set in another context (a pool that runs prerun and postrun apart): nothing to restore.
        current_trace_id.set("-")


@signals.worker_process_shutdown.connect
def _worker_process_exited(pid=None, **kwargs):
    metrics.mark_process_dead(pid or os.getpid())
