"""The database probe of /health/ready and the metrics gauges give up on a frozen server instead of
waiting for it.

A frozen server (a stalled disk, a stopped process) keeps its connections open and its kernel keeps
acknowledging, so no TCP timeout fires and a statement on a kept connection waits until the server
wakes. Found by an outside review (kill -STOP of PostgreSQL): readiness probes on kept connections
hung, each holding a worker thread, until /health/live went unanswered too. Here a relay between
the app and PostgreSQL freezes: it stops passing bytes both ways and keeps every connection open."""

import contextlib
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from tests.observability.conftest import app_env, database_url

pytestmark = pytest.mark.django_db(transaction=True)


class FreezingRelay:
    """Relays TCP connections to `upstream`; once frozen it passes nothing more and answers no one new."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.frozen.is_set():
                continue
            server = socket.create_connection(self.upstream)
            self.sockets.append(server)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source, target):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if self.frozen.is_set():
                # Held, as a frozen server holds what it was sent: nothing goes on.
                self.frozen.wait()
                return
            target.sendall(data)

    def close(self):
        self.listener.close()
        for sock in self.sockets:
            # Shut down first: a close alone neither wakes a pump blocked on the socket nor ends the
            # connection while that pump holds it.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def wait_until_the_relayed_sessions_end():
    """The test database is dropped at the end of the run only once no other session uses it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.2)


PROBE_TWICE = """
import sys, django
django.setup()
from orchestrator.http.health import database_status
print(database_status(), flush=True)
sys.stdin.readline()  # the relay freezes now
print(database_status(), flush=True)
"""


GAUGES_TWICE = """
import sys, django
django.setup()
from observability.gauges import DomainGauges

def sources_up():
    families = DomainGauges().collect()
    up = next(family for family in families if family.name == "orchestrator_gauge_source_up")
    return sorted({int(sample.value) for sample in up.samples})

print(*sources_up(), flush=True)
sys.stdin.readline()  # the relay freezes now
print(*sources_up(), flush=True)
"""


def run_twice_across_a_freeze(code, **env):
    """Run `code` through a relay to the test database; freeze the relay when it reads a line. Its
    output: a line before the freeze, a line after."""
    address = urlsplit(database_url())
    relay = FreezingRelay((address.hostname, address.port))
    through_relay = urlunsplit(address._replace(netloc=f"{address.username}@127.0.0.1:{relay.port}"))
    probe = subprocess.Popen(
        [sys.executable, "-c", code],
        env=app_env(DATABASE_URL=through_relay, DATABASE_CONNECT_TIMEOUT="2", DATABASE_CONN_MAX_AGE="600", **env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        before = probe.stdout.readline()
        relay.frozen.set()
        probe.stdin.write("\n")
        probe.stdin.flush()
        # Without a deadline the second run waits as long as the server stays frozen: for ever here.
        after, err = probe.communicate(timeout=60)
    finally:
        probe.kill()
        relay.close()
        wait_until_the_relayed_sessions_end()
    return before.split(), after.split(), err


def test_a_probe_on_a_kept_connection_to_a_frozen_server_answers_unavailable():
    before, after, err = run_twice_across_a_freeze(PROBE_TWICE)

    # Its own deadline (the connect timeout) on the kept connection, then a fresh connection's.
    assert (before, after) == (["ok"], ["unavailable"]), err[-1000:]


def test_a_scrape_over_a_kept_connection_to_a_frozen_server_reports_its_sources_down():
    before, after, err = run_twice_across_a_freeze(GAUGES_TWICE, METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS="1")

    assert (before, after) == (["1"], ["0"]), err[-1000:]


GAUGES_FROZEN_AT_COMMIT = """
import sys, django
django.setup()
from django.db import connection
from observability.gauges import DomainGauges

def waits_for_the_freeze(now):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    print("1", flush=True)  # the relay freezes now: what is left is the COMMIT
    sys.stdin.readline()
    return iter(())

families = DomainGauges(sources={"frozen_at_commit": waits_for_the_freeze}).collect()
up = next(family for family in families if family.name == "orchestrator_gauge_source_up")
print(*sorted({int(sample.value) for sample in up.samples}), flush=True)
"""


def test_a_scrape_whose_commit_meets_the_freeze_still_answers():
    # Found by the second outside review: the deadline covered the statements, not the COMMIT.
    before, after, err = run_twice_across_a_freeze(GAUGES_FROZEN_AT_COMMIT, METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS="1")

    assert (before, after) == (["1"], ["0"]), err[-1000:]
