"""With no database connection to be had, a scrape tries one gauge source, not every one: each would
wait out the same connect timeout, and the page must answer inside Prometheus's scrape timeout."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from observability.gauges import SOURCES

COMPUTE_THE_GAUGES = """
import json
import django
django.setup()
from observability.gauges import DomainGauges
[up] = [family for family in DomainGauges()._compute() if family.name == "orchestrator_gauge_source_up"]
print(json.dumps({sample.labels["source"]: sample.value for sample in up.samples}))
"""


def test_a_database_that_never_answers_is_connected_to_once_per_scrape_and_every_source_reports_0():
    # A host that takes the TCP connection and then says nothing, as a hung server or a half-dead
    # proxy does; it counts the connections it is offered.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    silent.settimeout(0.1)
    offered, done = [], threading.Event()

    def take_connections():
        while not done.is_set():
            try:
                offered.append(silent.accept()[0])
            except TimeoutError:
                continue

    taker = threading.Thread(target=take_connections)
    taker.start()
    try:
        completed = subprocess.run(
            [sys.executable, "-c", COMPUTE_THE_GAUGES],
            cwd=Path(__file__).resolve().parents[2],
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:{silent.getsockname()[1]}/orchestrator",
                "DATABASE_CONNECT_TIMEOUT": "2",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        done.set()
        taker.join()
        for connection in offered:
            connection.close()
        silent.close()

    assert completed.returncode == 0, completed.stderr
    up = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(SOURCES) <= set(up) and set(up.values()) == {0}
    assert len(offered) == 1
    assert "gauge sources" in completed.stderr and "skipped" in completed.stderr
