"""Request lines and request counts are written in batches (orchestrator/telemetry/request_batches.py):
a batch waits for 64 requests, the flush period or the process's exit; a line written straight to
the stream is the line the logging module writes; a late line keeps its request's time; nothing is
lost by a stop, doubled by a fork or torn by threads."""

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime

import pytest
from django.test import Client
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from orchestrator.telemetry import request_batches
from orchestrator.telemetry.logs import (
    JsonFormatter,
    SuspiciousRequestTextLeftOut,
    TraceIdFilter,
    current_trace_id,
    direct_json_handler,
)
from orchestrator.telemetry.request_batches import BATCH_SIZE, pending
from tests.observability.conftest import once, request_lines, start_gunicorn, stop

OUTCOMES = [
    # (measured, logged, route, method, status, duration, subject, role, trace_id, created)
    (False, True, "session-detail", "GET", 200, 0.0123456, "token:7", "finance", "trace-1", 1_765_000_000.123456),
    (False, True, "unmatched", "other", 404, 2.5, "", "", "-", 1_765_000_001.0),
    (False, False, "sessions", "POST", 201, 0.1, "token:8", "finance", "not-logged", 1_765_000_002.5),
    (False, True, "sessions", "POST", 400, 0.0004, 'user:ann "\\ \n\u2603', "", "t:3", 1_765_000_003.999999),
]


def json_handler(stream):
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceIdFilter())
    handler.addFilter(SuspiciousRequestTextLeftOut())
    return handler


@pytest.fixture
def held_for_a_minute(settings):
    """Nothing is written before the test asks: the period is a minute, the batch starts empty, and
    the timer of an earlier test is retired (the next request starts one with this period)."""
    pending.write()
    settings.REQUEST_TELEMETRY_FLUSH_SECONDS = 60
    pending._timer = None
    yield
    pending.write()


@pytest.fixture
def direct_log(held_for_a_minute, monkeypatch):
    """The request logger configured as logging_config configures it, writing to a string. A logger
    of its own, outside the tree: pytest attaches its capture handlers to the root and to every
    logger that does not propagate, which would send the lines through the logging module."""
    stream = io.StringIO()
    isolated = logging.Logger("orchestrator.request", logging.INFO)
    isolated.addHandler(json_handler(stream))
    monkeypatch.setattr(request_batches, "logger", isolated)
    assert direct_json_handler(isolated) is isolated.handlers[0]
    yield stream
    pending.write()


def logged_trace_ids(stream):
    return [json.loads(line)["trace_id"] for line in stream.getvalue().splitlines()]


def health_live(client, trace_id):
    assert client.get("/api/v1/health/live", HTTP_X_TRACE_ID=trace_id).status_code == 200


def health_live_count():
    labels = {"route": "health-live", "method": "GET", "status": "200"}
    return REGISTRY.get_sample_value("orchestrator_http_requests_total", labels) or 0


def test_a_line_written_straight_to_the_stream_is_the_line_the_logging_module_writes(monkeypatch):
    isolated = logging.Logger("orchestrator.request", logging.INFO)
    direct = io.StringIO()
    isolated.addHandler(json_handler(direct))
    monkeypatch.setattr(request_batches, "logger", isolated)
    assert direct_json_handler(isolated) is isolated.handlers[0]

    request_batches.record(OUTCOMES)
    written_directly = direct.getvalue()

    # A second handler is something the direct path cannot honour: the logging module writes both.
    direct.seek(0)
    direct.truncate()
    copied = io.StringIO()
    isolated.addHandler(json_handler(copied))
    assert direct_json_handler(isolated) is None
    request_batches.record(OUTCOMES)

    assert written_directly == direct.getvalue() == copied.getvalue()
    lines = [json.loads(line) for line in written_directly.splitlines()]
    assert [line["trace_id"] for line in lines] == ["trace-1", "-", "t:3"]
    assert lines[2]["principal"] == 'user:ann "\\ \n\u2603'
    assert lines[0]["timestamp"] == "2025-12-06T05:46:40.123456+00:00"
    assert lines[0]["message"] == "GET session-detail 200 12.3ms"


def options_set_after(**options):
    """A JsonFormatter as dictConfig builds one with "." attributes: built plain, then changed."""
    formatter = JsonFormatter()
    for name, value in options.items():
        setattr(formatter, name, value)
    return formatter


def test_an_operators_record_factory_sends_the_line_through_the_logging_module():
    isolated = logging.Logger("orchestrator.request", logging.INFO)
    isolated.addHandler(json_handler(io.StringIO()))
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(lambda *args, **kwargs: factory(*args, **kwargs))
    try:
        assert direct_json_handler(isolated) is None
    finally:
        logging.setLogRecordFactory(factory)
    assert direct_json_handler(isolated) is not None


@pytest.mark.parametrize(
    "change",
    [
        lambda logger: logger.addFilter(lambda record: True),
        lambda logger: logger.handlers[0].addFilter(lambda record: True),
        lambda logger: logger.handlers[0].setLevel(logging.WARNING),
        lambda logger: logger.handlers[0].setFormatter(JsonFormatter(json_indent=True)),
        lambda logger: logger.handlers[0].setFormatter(logging.Formatter("%(message)s")),
        lambda logger: setattr(logger, "disabled", True),
        lambda logger: logger.handlers[0].setFormatter(options_set_after(json_indent=True)),
        lambda logger: logger.handlers[0].setFormatter(options_set_after(static_fields={"host": "web-1"})),
        lambda logger: setattr(logger, "__class__", type("OperatorsLogger", (logging.Logger,), {})),
        lambda logger: logger.addHandler(logging.NullHandler()),
        lambda logger: setattr(logger, "handlers", [logging.FileHandler(os.devnull, delay=True)]),
        lambda logger: logger.handlers[0].setStream(io.TextIOWrapper(io.BytesIO(), encoding="ascii")),
    ],
    ids=[
        "logger filter",
        "handler filter",
        "handler level",
        "formatter options",
        "text formatter",
        "disabled",
        "options set after the formatter was built",
        "static fields set after the formatter was built",
        "logger class",
        "second handler",
        "file handler",
        "a stream not in UTF-8",
    ],
)
def test_any_change_to_the_configured_logging_sends_the_line_through_the_logging_module(change):
    isolated = logging.Logger("orchestrator.request", logging.INFO)
    isolated.addHandler(json_handler(io.StringIO()))
    assert direct_json_handler(isolated) is not None

    change(isolated)

    assert direct_json_handler(isolated) is None


def test_lines_and_counts_wait_for_a_full_batch_and_come_in_the_order_of_their_requests(direct_log, db):
    client = Client()
    counted_before = health_live_count()
    trace_ids = [f"batch-{uuid.uuid4().hex}" for _ in range(BATCH_SIZE + 1)]

    for trace_id in trace_ids[: BATCH_SIZE - 1]:
        health_live(client, trace_id)
    assert len(pending) == BATCH_SIZE - 1
    assert direct_log.getvalue() == ""
    assert health_live_count() == counted_before

    health_live(client, trace_ids[BATCH_SIZE - 1])
    assert logged_trace_ids(direct_log) == trace_ids[:BATCH_SIZE]
    assert health_live_count() == counted_before + BATCH_SIZE

    health_live(client, trace_ids[BATCH_SIZE])
    assert len(pending) == 1
    pending.write()
    assert logged_trace_ids(direct_log) == trace_ids
    assert health_live_count() == counted_before + BATCH_SIZE + 1


def test_a_line_written_late_keeps_the_time_its_request_ended(direct_log, db):
    before = time.time()
    health_live(Client(), "late-line")
    answered = time.time()
    time.sleep(0.3)

    pending.write()

    [line] = [json.loads(line) for line in direct_log.getvalue().splitlines()]
    assert line["trace_id"] == "late-line"
    written_for = datetime.fromisoformat(line["timestamp"]).timestamp()
    assert before <= written_for <= answered


def test_with_an_operators_handler_the_line_is_logged_at_once_in_its_requests_context(held_for_a_minute, caplog, db):
    caplog.set_level(logging.INFO, logger="orchestrator.request")
    seen = []

    def context_reader(record):
        seen.append(current_trace_id.get())
        return True

    request_batches.logger.addFilter(context_reader)
    try:
        health_live(Client(), "own-context")
    finally:
        request_batches.logger.removeFilter(context_reader)

    assert seen == ["own-context"]
    [record] = [record for record in caplog.records if record.name == "orchestrator.request"]
    assert record.trace_id == "own-context"
    assert len(pending) == 1  # its counts still wait for the batch


def test_a_line_whose_logging_changed_before_its_batch_was_written_keeps_its_requests_time(direct_log, caplog, db):
    before = time.time()
    health_live(Client(), "reconfigured")
    answered = time.time()
    caplog.set_level(logging.INFO, logger="orchestrator.request")
    request_batches.logger.addHandler(caplog.handler)
    time.sleep(0.3)

    try:
        pending.write()
    finally:
        request_batches.logger.removeHandler(caplog.handler)

    [record] = [record for record in caplog.records if record.name == "orchestrator.request"]
    assert before <= record.created <= answered
    assert record.msecs == int((record.created - int(record.created)) * 1000)
    assert record.trace_id == "reconfigured"
    assert record.getMessage().startswith("GET health-live 200 ")
    assert logged_trace_ids(direct_log) == ["reconfigured"]


def test_a_batch_that_cannot_be_written_fails_no_request_and_is_logged(caplog, db, monkeypatch):
    def broken_instruments(route, method, status):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(request_batches, "instruments_for", broken_instruments)

    health_live(Client(), "unwritable")

    [failure] = [record for record in caplog.records if record.name == request_batches.__name__]
    assert failure.levelno == logging.ERROR
    assert failure.getMessage() == "writing 1 requests' telemetry failed"
    assert "No space left on device" in failure.exc_text
    assert len(pending) == 0


def test_an_operators_filter_that_raises_fails_no_request(caplog, db, monkeypatch, capsys):
    def broken_filter(record):
        raise ValueError("a filter with a bug")

    caplog.set_level(logging.INFO, logger="orchestrator.request")
    caplog.handler.addFilter(broken_filter)
    try:
        health_live(Client(), "broken-filter")
    finally:
        caplog.handler.removeFilter(broken_filter)

    assert "logging a request line failed" in capsys.readouterr().err


def test_the_timer_writes_on_after_a_batch_failed(direct_log, settings, db, monkeypatch):
    settings.REQUEST_TELEMETRY_FLUSH_SECONDS = 0.2
    failures = []
    real_instruments = request_batches.instruments_for

    def failing_once(route, method, status):
        if not failures:
            failures.append(route)
            raise OSError(28, "No space left on device")
        return real_instruments(route, method, status)

    monkeypatch.setattr(request_batches, "instruments_for", failing_once)
    health_live(Client(), "lost-with-its-batch")
    once(lambda: failures, bool)

    health_live(Client(), "written-by-the-timer")
    once(direct_log.getvalue, lambda written: "written-by-the-timer" in written)

    assert failures == ["health-live"]
    assert logged_trace_ids(direct_log) == ["written-by-the-timer"]


def test_a_line_that_cannot_be_made_costs_that_line_alone(direct_log, capsys):
    labels = {"route": "poison-test", "method": "GET", "status": "200"}
    counted_before = REGISTRY.get_sample_value("orchestrator_http_requests_total", labels) or 0
    outcome = (True, True, "poison-test", "GET", 200, 0.01, "token:1", "finance", "good-1", time.time())
    poisoned = (*outcome[:6], "oidc:\ud800", "finance", "poisoned", time.time())

    request_batches.record([outcome, poisoned, (*outcome[:8], "good-2", time.time())])

    assert logged_trace_ids(direct_log) == ["good-1", "good-2"]
    assert REGISTRY.get_sample_value("orchestrator_http_requests_total", labels) == counted_before + 3
    assert "surrogates not allowed" in capsys.readouterr().err


# The thread's end is the point of the test; pytest reports any thread's end by an exception.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_timer_whose_thread_ended_is_started_again(direct_log, settings, db, monkeypatch):
    settings.REQUEST_TELEMETRY_FLUSH_SECONDS = 0.2
    real_write = pending.write

    def ending_the_thread():
        monkeypatch.setattr(pending, "write", real_write)
        raise SystemExit  # however a thread ends, not only by an exception write() catches

    monkeypatch.setattr(pending, "write", ending_the_thread)
    health_live(Client(), "first")
    once(lambda: pending.write, lambda write: write is real_write)
    once(lambda: pending._timer, lambda timer: timer is None)
    assert direct_log.getvalue() == ""

    health_live(Client(), "second")
    once(direct_log.getvalue, lambda written: "second" in written)

    assert logged_trace_ids(direct_log) == ["first", "second"]


def test_workers_sharing_one_pipe_never_tear_each_others_lines(monkeypatch):
    """Each write of a batch reaches the pipe whole (at most PIPE_BUF bytes, cut at line ends), as
    the logging module's one write per line did, however slowly the collector reads."""
    read_end, write_end = os.pipe()
    writers, batches = 4, 30
    children = []
    for writer in range(writers):
        child = os.fork()
        if child == 0:
            os.close(read_end)
            isolated = logging.Logger("orchestrator.request", logging.INFO)
            isolated.addHandler(json_handler(open(write_end, "w", buffering=1, closefd=False)))  # noqa: SIM115
            request_batches.logger = isolated
            for batch in range(batches):
                request_batches.record(
                    [
                        (False, True, "session-detail", "GET", 200, 0.01, f"token:{writer}", "finance",
                         f"w{writer}-b{batch}-{n}-" + "x" * 60, time.time())
                        for n in range(BATCH_SIZE)
                    ]
                )  # fmt: skip
            os._exit(0)
        children.append(child)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 1000):
        data += chunk
        time.sleep(0.0005)
    os.close(read_end)
    for child in children:
        os.waitpid(child, 0)

    lines = data.decode().splitlines()
    assert len(lines) == writers * batches * BATCH_SIZE
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_a_forked_child_starts_without_the_requests_its_parent_holds(held_for_a_minute, db):
    health_live(Client(), "held-by-the-parent")
    assert len(pending) == 1

    child = os.fork()
    if child == 0:
        os._exit(len(pending))
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert len(pending) == 1


@pytest.mark.parametrize("value", ["-1", "0.05", "61", "nan", "inf", "soon"])
def test_a_flush_period_other_than_0_or_from_a_tenth_to_60_seconds_is_refused_at_startup(value):
    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "orchestrator.settings", "REQUEST_TELEMETRY_FLUSH_SECONDS": value},
        capture_output=True,
        text=True,
    )
    assert completed.returncode != 0
    assert "REQUEST_TELEMETRY_FLUSH_SECONDS must be" in completed.stderr


@pytest.mark.django_db(transaction=True)
def test_an_idle_workers_lines_arrive_without_another_request(tmp_path):
    process, server = start_gunicorn(tmp_path, workers=1)
    try:
        assert server.request("GET", "/api/v1/health/live", headers={"X-Trace-Id": "idle-worker"}).status == 200

        lines = server.log_lines_once(lambda lines: any("idle-worker" in line for line in lines))
    finally:
        stop(process)

    assert any("idle-worker" in line for line in lines)


@pytest.mark.django_db(transaction=True)
def test_a_stopped_server_writes_the_lines_and_counts_its_workers_still_held(tmp_path):
    process, server = start_gunicorn(tmp_path, workers=2, REQUEST_TELEMETRY_FLUSH_SECONDS="60")
    try:
        for n in range(3):
            headers = {"X-Trace-Id": f"held-{n}"}
            assert server.request("GET", "/api/v1/health/live", headers=headers).status == 200
        time.sleep(0.5)
        assert not [line for line in request_lines(server.log_lines()) if line["trace_id"].startswith("held-")]
    finally:
        stop(process)

    held = sorted(
        line["trace_id"] for line in request_lines(server.log_lines()) if line["trace_id"].startswith("held-")
    )
    assert held == ["held-0", "held-1", "held-2"]
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(server.metrics_dir))
    labels = {"route": "health-live", "method": "GET", "status": "200"}
    # The three and the start-up probes (one or more) of wait_until_answering.
    assert registry.get_sample_value("orchestrator_http_requests_total", labels) >= 4


@pytest.mark.django_db(transaction=True)
def test_threads_of_one_worker_write_each_line_once_and_whole(tmp_path):
    process, server = start_gunicorn(tmp_path, workers=1, options=("--worker-class", "gthread", "--threads", "4"))
    trace_ids = [f"thread-{n}" for n in range(200)]
    failures = []

    def send(chunk):
        for trace_id in chunk:
            answer = server.request("GET", "/api/v1/health/live", headers={"X-Trace-Id": trace_id})
            if answer.status != 200:
                failures.append(answer.status)

    try:
        senders = [threading.Thread(target=send, args=(trace_ids[n::8],)) for n in range(8)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        server.log_lines_once(lambda lines: sum('"thread-' in line for line in lines) >= len(trace_ids))
    finally:
        stop(process)

    assert failures == []
    written = [line["trace_id"] for line in request_lines(server.log_lines()) if line["trace_id"].startswith("thread-")]
    assert sorted(written) == sorted(trace_ids)
