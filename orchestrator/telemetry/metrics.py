"""The Prometheus instruments every process records into, and how a page of them is rendered.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn, Celery), prometheus-client keeps each process's values
in memory-mapped files in that directory and a scrape adds them up across processes; without it
(`make run`, the test process) values live in the process's default registry.
"""

import hmac
import os

from django.conf import settings
from django.db import transaction
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

# Seconds; a request or a job beyond 10 s is an incident whatever its bucket.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Waits of people and queues: a second to a day.
WAIT_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)

http_requests = Counter(
    "orchestrator_http_requests",
    "HTTP requests answered, by URL pattern name, method and status code.",
    ["route", "method", "status"],
)
http_request_duration = Histogram(
    "orchestrator_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by URL pattern name and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
task_claim_wait = Histogram(
    "orchestrator_task_claim_wait_seconds",
    "Claim latency: how long a task waited from being routed until an agent of its role claimed it.",
    ["role"],
    buckets=WAIT_BUCKETS,
)
approval_decision_time = Histogram(
    "orchestrator_approval_time_to_decision_seconds",
    "How long an approval waited from being requested until a person or agent decided it.",
    ["approver_role", "decision"],
    buckets=WAIT_BUCKETS,
)
job_runs = Counter(
    "orchestrator_job_runs",
    "Periodic job runs, by job and outcome (success or failure).",
    ["job", "outcome"],
)
job_duration = Histogram(
    "orchestrator_job_duration_seconds",
    "How long a periodic job run took.",
    ["job"],
    buckets=LATENCY_BUCKETS + (30.0, 60.0, 300.0),
)
job_rows = Counter(
    "orchestrator_job_rows",
    "Rows a periodic job touched (expired, sealed, purged...), as the job reports them.",
    ["job"],
)
job_items_skipped = Counter(
    "orchestrator_job_items_skipped",
    "Items a job run could not process (a bug, a damaged row): logged with the traceback, left as they "
    "were, and tried again by the next run, which still counts as a success.",
    ["job"],
)
# prometheus-client writes a process's first value into this directory; it must exist by then.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# Every instrument here has labels, so none writes a value (and opens this process's file in
# PROMETHEUS_MULTIPROC_DIR) at import: a Celery worker's main process empties that directory when it
# starts (exposition._worker_starting), after this module is imported, and a file opened before
# would be written on deleted: the failure count of a job killed at its time limit, made in that
# process, was lost so (found by an outside review; tests/observability/test_job_metrics.py).
approval_emails_refused = Counter(
    "orchestrator_approval_emails_refused",
    "Approval emails the mail server refused for good, by reason: `recipient` (a refused recipient, a 5xx "
    "at DATA, a message it will not take), `deferred` (a 4xx past MAIL_DEFERRAL_LIMIT), `sender` (our own "
    "address refused: those mails wait for the fix). Any increase wants a look; a steady one is a server "
    "refusing every message.",
    ["reason"],
)
policy_evaluations_stopped = Counter(
    "orchestrator_policy_evaluations_stopped",
    "Checks whose rule was stopped past POLICY_EVALUATION_SECONDS or POLICY_EVALUATION_MEMORY_MB (or whose "
    "evaluator could not start), by the role whose profile holds it: each denied with a policy.error event.",
    ["role"],
)

job_last_success = Gauge(
    "orchestrator_job_last_success_timestamp_seconds",
    "Unix time of the job's last successful run.",
    ["job"],
    multiprocess_mode="max",
)


def enabled():
    return settings.METRICS_ENABLED


def count_skipped_item(job):
    """One item `job` (its Celery name) left for its next run after an error it did not foresee."""
    if enabled():
        job_items_skipped.labels(job=job).inc()


def count_refused_email(reason):
    """One approval email refused for `reason`: recipient, deferred or sender."""
    if enabled():
        approval_emails_refused.labels(reason=reason).inc()


def count_stopped_evaluation(role):
    """One check of `role`'s profile denied because its evaluator was stopped (policy/evaluator.py)."""
    if enabled():
        policy_evaluations_stopped.labels(role=role).inc()


def observe_on_commit(histogram, value, **labels):
    """Observe `value` once the current transaction commits: a rolled-back claim or decision
    never happened, so it is not measured either."""
    if enabled():
        transaction.on_commit(lambda: histogram.labels(**labels).observe(max(0.0, value)))


def multiprocess_dir():
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def process_registry():
    """The registry holding every process's instruments: all processes' files in multiprocess mode."""
    if not multiprocess_dir():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def render(*extra_collectors):
    """The text exposition of every process's instruments plus `extra_collectors`."""
    registry = process_registry()
    if not extra_collectors:
        return generate_latest(registry)
    combined = CollectorRegistry(auto_describe=False)
    combined.register(_Everything(registry))
    for collector in extra_collectors:
        combined.register(collector)
    return generate_latest(combined)


class _Everything:
    """One registry's metrics as a collector of another registry."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def bearer_is_the_metrics_token(authorization_header):
    """True only for `Bearer <METRICS_TOKEN>` with METRICS_TOKEN configured (constant-time compare)."""
    expected = settings.METRICS_TOKEN
    if not expected or not authorization_header:
        return False
    scheme, _, presented = authorization_header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def wipe_multiprocess_dir():
    """Start a process group with an empty directory: files of a previous run's dead processes
    would otherwise be added to this run's figures."""
    directory = multiprocess_dir()
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))


def mark_process_dead(pid):
    """A worker process exited: drop its live gauges (its counters stay, as Prometheus expects)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
