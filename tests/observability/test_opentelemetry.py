"""OpenTelemetry export is off by default (nothing imported), survives missing packages, and when
OTEL_EXPORTER_OTLP_ENDPOINT is set exports the request's span to a real OTLP/HTTP receiver."""

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.observability.conftest import start_gunicorn, stop

REPO = Path(__file__).resolve().parents[2]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def run_python(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "orchestrator.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_with_no_endpoint_no_opentelemetry_module_is_even_imported():
    completed = run_python(
        "import sys, orchestrator.wsgi; print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))",
        OTEL_EXPORTER_OTLP_ENDPOINT="",
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_with_an_endpoint_but_without_the_packages_the_app_logs_it_and_serves_on():
    # The SDK is made unimportable, as on an image built without requirements-otel.txt.
    code = """
import sys
class NoSdk:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation")):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, NoSdk())
import orchestrator.wsgi
from django.test import Client
print(Client().get("/api/v1/health/live", HTTP_HOST="localhost").status_code)
"""
    completed = run_python(code, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9/", LOG_FORMAT="text")

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == "200"
    assert "OpenTelemetry is not installed" in completed.stderr


@pytest.fixture(scope="session")
def otel_site():
    """requirements-otel.txt installed into a directory of its own (the shared venv stays without it)."""
    requirements = [
        line
        for line in (REPO / "requirements-otel.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-r"))
    ]
    site = Path("/tmp") / ("orchestrator-otel-" + hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12])
    if not (site / "opentelemetry" / "sdk").is_dir():
        completed = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), *requirements],
            capture_output=True,
            text=True,
        )
        # The registry is reachable wherever the suite runs (CI too): an install that fails is a
        # broken pin, which must show, not be skipped over.
        assert completed.returncode == 0, f"requirements-otel.txt did not install: {completed.stderr[-500:]}"
    return site


class OtlpReceiver(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        OtlpReceiver.received.append((self.path, self.headers.get("Content-Type"), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.mark.django_db(transaction=True)
def test_with_an_endpoint_the_request_span_is_exported_and_named_in_the_traceparent(otel_site, tmp_path, issue_token):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtlpReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    OtlpReceiver.received.clear()
    process = None
    try:
        process, server = start_gunicorn(
            tmp_path,
            workers=1,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.server_port}",
            OTEL_BSP_SCHEDULE_DELAY="100",
            PYTHONPATH=str(otel_site),
        )
        token = issue_token("finance")
        answer = server.request(
            "POST",
            "/api/v1/sessions",
            body={"role": "finance"},
            headers={"Authorization": f"Bearer {token}", "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
        assert answer.status == 201, answer.body
        _, trace_id, span_id, flags = answer.headers["traceparent"].split("-")
        assert (trace_id, flags) == (TRACE_ID, "01")
        assert answer.headers["x-trace-id"] == TRACE_ID

        deadline = time.monotonic() + 20
        while not any(bytes.fromhex(span_id) in body for _, _, body in OtlpReceiver.received):
            assert time.monotonic() < deadline, OtlpReceiver.received
            time.sleep(0.1)
        path, content_type, body = next(r for r in OtlpReceiver.received if bytes.fromhex(span_id) in r[2])
        assert path == "/v1/traces"
        assert content_type == "application/x-protobuf"
        assert bytes.fromhex(TRACE_ID) in body
    finally:
        if process is not None:
            stop(process)
        receiver.shutdown()
