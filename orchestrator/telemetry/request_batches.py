"""What each answered request owes the metrics and the request log, written in batches.

Written as each request ended, the request line and the request's counter and histogram cost a GET
about a sixth of its CPU in-process (docs/benchmarks.md): a request runs on caches its wait for
PostgreSQL left cold, so the same code costs ten times what it costs in a loop. The middleware
only notes each request's outcome; the lines and measurements of a batch are made in one loop and
the lines written in one system call. A batch is written when BATCH_SIZE outcomes wait, every
REQUEST_TELEMETRY_FLUSH_SECONDS (a timer thread, so an idle worker's lines still arrive), and when
the process exits (nginx's `access_log ... buffer= flush=` makes the same trade).

What the delay costs: a request's line and counts arrive up to that long late (every line keeps its
own timestamp), and a worker killed outright (SIGKILL, the OOM killer, gunicorn's timeout) loses at
most that long of them; no audit event, record or answer depends on them. 0 writes each request's
line and measurements as it ends.
"""

import atexit
import logging
import os
import threading
import time

from django.conf import settings

from orchestrator.telemetry import metrics
from orchestrator.telemetry.logs import direct_json_handler, write_direct

logger = logging.getLogger("orchestrator.request")

BATCH_SIZE = 64
# The request line's message, as the logging module formats it from the record's args.
MESSAGE = "%s %s %s %.1fms"

# (route, method, status) -> the labelled counter and histogram: labels() costs as much as the
# update itself, and the key set is bounded (named routes x known methods x status codes).
_instruments: dict[tuple[str, str, int], tuple] = {}


def instruments_for(route, method, status):
    key = (route, method, status)
    found = _instruments.get(key)
    if found is None:
        found = _instruments[key] = (
            metrics.http_requests.labels(route=route, method=method, status=status),
            metrics.http_request_duration.labels(route=route, method=method),
        )
    return found


class PendingRequests:
    """This process's outcomes not yet written. An outcome is the tuple
    (measured, logged, route, method, status, duration, subject, role, trace_id, created): whether
    the counts and the line are owed, what they record, and time.time() when the request ended."""

    def __init__(self):
        self._reset()
        # A forked child (a gunicorn worker) starts empty and without a timer: its parent writes
        # what it holds itself, and threads do not survive a fork.
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.write)

    def _reset(self):
        self._lock = threading.Lock()
        # One batch written at a time, so a process's lines keep their order.
        self._writing = threading.Lock()
        self._outcomes = []
        self._timer = None

    def __len__(self):
        return len(self._outcomes)

    def add(self, *, measured, logged, route, method, status, duration, subject, role, trace_id):
        """Note a request that just ended, in its own thread and context. Its line is logged at once
        when an operator's LOGGING has anything direct_json_handler cannot honour: a filter or record
        factory reading the request's context then sees this request, not the one that fills a batch."""
        if logged and _direct_handler() is None:
            log_now(route, method, status, duration, subject, role)
            logged = False
            if not measured:
                return
        delay = settings.REQUEST_TELEMETRY_FLUSH_SECONDS
        with self._lock:
            self._outcomes.append(
                (measured, logged, route, method, status, duration, subject, role, trace_id, time.time())
            )
            due = delay <= 0 or len(self._outcomes) >= BATCH_SIZE
            timer = None
            if not due and self._timer is None:
                timer = self._timer = threading.Thread(
                    target=self._write_every_period, name="request-telemetry", daemon=True
                )
        if timer is not None:
            try:
                timer.start()
            except RuntimeError:
                # No thread to be had (a pids limit, interpreter shutdown): write now, try again later.
                self._timer = None
                due = True
        if due:
            self.write()

    def write(self):
        with self._writing:
            with self._lock:
                outcomes, self._outcomes = self._outcomes, []
            if not outcomes:
                return
            try:
                record(outcomes)
            except Exception:
                # Neither the request that filled the batch nor the timer may fail for it: the
                # batch is lost and the error reported.
                _report(f"writing {len(outcomes)} requests' telemetry failed")

    def _write_every_period(self):
        this_thread = threading.current_thread()
        try:
            # A thread no longer the timer (retired by a test, or replaced) ends at its next wake.
            while self._timer is this_thread:
                delay = settings.REQUEST_TELEMETRY_FLUSH_SECONDS
                time.sleep(delay if delay > 0 else 1.0)
                if self._timer is this_thread:
                    self.write()
        finally:
            # Whatever ended this thread, the next request starts another.
            if self._timer is this_thread:
                self._timer = None


pending = PendingRequests()


def _report(message):
    """Log `message` with the exception being handled, unless logging itself is what fails (an
    operator's filter raising, a closed stream): then it goes where the logging module sends its own
    errors, and nothing is raised."""
    try:
        logging.getLogger(__name__).exception(message)
    except Exception:
        try:
            logging.lastResort.handle(logging.makeLogRecord({"msg": message, "levelno": logging.ERROR}))
        except Exception:  # noqa: S110  (stderr itself is gone: there is nowhere left to say it)
            pass


def _direct_handler():
    """direct_json_handler(logger), or None when even looking fails (an operator's formatter whose
    attributes cannot be compared): the line then goes through the logging module."""
    try:
        return direct_json_handler(logger)
    except Exception:
        return None


def _fields(route, method, status, milliseconds, subject, role):
    return {
        "event": "request",
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(milliseconds, 3),
        "principal": subject,
        "role": role,
    }


def log_now(route, method, status, duration, subject, role):
    milliseconds = duration * 1000
    try:
        logger.info(
            MESSAGE,
            method,
            route,
            status,
            milliseconds,
            extra=_fields(route, method, status, milliseconds, subject, role),
        )
    except Exception:
        _report("logging a request line failed")


def record(outcomes):
    """Count and log `outcomes`: their lines straight to the stream when the logging configuration
    is the one logs.logging_config builds; if it changed since they were noted, through the logging
    module, each record dated as its request."""
    for measured, _, route, method, status, duration, *_ in outcomes:
        if measured:
            requests, duration_histogram = instruments_for(route, method, status)
            requests.inc()
            duration_histogram.observe(duration)
    handler = _direct_handler()
    lines = []
    for _, logged, route, method, status, duration, subject, role, trace_id, created in outcomes:
        if not logged:
            continue
        milliseconds = duration * 1000
        fields = _fields(route, method, status, milliseconds, subject, role)
        arguments = (method, route, status, milliseconds)
        line = None
        if handler is not None:
            try:
                line = handler.formatter.info_line(
                    logger_name=logger.name,
                    message=MESSAGE % arguments,
                    fields=fields,
                    trace_id=trace_id,
                    created=created,
                )
            except Exception:
                # One line the fast path cannot make costs that line alone: the logging module
                # makes or reports it, as it would have unbatched.
                line = None
        if line is None:
            try:
                _handle_dated(fields, arguments, trace_id, created)
            except Exception:
                _report("logging a request line failed")
        else:
            lines.append(line)
    if lines:
        try:
            write_direct(handler, lines)
        except Exception:
            handler.handleError(logger.makeRecord(logger.name, logging.INFO, "", 0, "%s", (lines[0],), None))


def _handle_dated(fields, arguments, trace_id, created):
    """Hand the logging module the record logger.info would have made when the request ended."""
    made = logger.makeRecord(
        logger.name, logging.INFO, "(unknown file)", 0, MESSAGE, arguments, None, "(unknown function)", fields
    )
    made.relativeCreated -= (made.created - created) * 1000
    made.created = created
    made.msecs = int((created - int(created)) * 1000) + 0.0
    made.trace_id = trace_id
    logger.handle(made)
