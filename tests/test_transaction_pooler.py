"""Behind a real PgBouncer in transaction mode (DATABASE_TRANSACTION_POOLING=true) every answer stays
right, though each of a worker's transactions may run in another server session: reads, keyed writes
and their replays, a task routed, claimed and completed, and a long read outside a transaction; and
the app keeps nothing in a server session (no prepared read, no holdable cursor).

The pooler has two server sessions. The test holds both with transactions of its own and lets go of
one at a time, so the app's next statements must run in the session it chose, turn by turn."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.net import free_port
from tests.observability.conftest import REPO, app_env, start_gunicorn, stop

PGBOUNCER = Path("/usr/sbin/pgbouncer")
SERVER_SESSIONS = 2


def hand_one_session_to_the_app(holders, turn):
    """Let go of one server session (by turns) so that the app's statements until the next call run
    in it alone; returns that session's backend pid. The app is idle between calls: a holder still
    in its transaction asks its own session, the one let go of last turn takes the session left free."""
    pids = [holder.execute("SELECT pg_backend_pid()").fetchone()[0] for holder in holders]
    holders[turn % len(holders)].rollback()
    return pids[turn % len(holders)]


@dataclass
class Pooler:
    url: str
    holders: list[psycopg.Connection]

    def run_the_app_in(self, turn):
        return hand_one_session_to_the_app(self.holders, turn)

    def prepared_reads_in_each_session(self):
        """How many statements orchestrator.postgresql prepared for reads, in each server session."""
        counts = []
        for holder in self.holders:
            counts.append(
                holder.execute(
                    "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'orchestrator_read_%'"
                ).fetchone()[0]
            )
        for holder in self.holders:
            holder.rollback()
        return counts


def _start_pgbouncer(directory, port, database):
    (directory / "users.txt").write_text(f'"{database["USER"]}" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        f"[databases]\n"
        f"{database['NAME']} = host={database['HOST']} port={database['PORT']} dbname={database['NAME']}\n"
        f"[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        f"unix_socket_dir =\n"
        f"auth_type = trust\n"
        f"auth_file = {directory / 'users.txt'}\n"
        f"pool_mode = transaction\n"
        f"default_pool_size = {SERVER_SESSIONS}\n"
        f"max_client_conn = 50\n"
        # A client left waiting for a server session fails in seconds instead of hanging the test.
        f"query_wait_timeout = 15\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
    )
    command = [str(PGBOUNCER), str(ini)]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root.
        shutil.chown(directory, "postgres")
        for path in directory.iterdir():
            shutil.chown(path, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def _pgbouncer():
    assert PGBOUNCER.exists(), "PgBouncer is missing: run scripts/services.sh install"
    database = connection.settings_dict
    directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    directory.chmod(0o755)
    port = free_port()
    process = _start_pgbouncer(directory, port, database)
    url = f"postgresql://{database['USER']}@127.0.0.1:{port}/{database['NAME']}"
    holders = []
    try:
        for _ in range(50):
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert process.poll() is None, (directory / "pgbouncer.log").read_text()
                time.sleep(0.1)
        holders = [psycopg.connect(url) for _ in range(SERVER_SESSIONS)]
        pids = [holder.execute("SELECT pg_backend_pid()").fetchone()[0] for holder in holders]
        assert len(set(pids)) == SERVER_SESSIONS
        for holder in holders:
            holder.rollback()
        yield Pooler(url, holders)
    finally:
        for holder in holders:
            holder.close()
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["true", "false"], ids=["pooling set", "pooling not set"])
def app_behind_the_pooler(request, transactional_db, tmp_path):
    with _pgbouncer() as pooler:
        process, server = start_gunicorn(
            tmp_path, workers=1, DATABASE_URL=pooler.url, DATABASE_TRANSACTION_POOLING=request.param
        )
        try:
            yield pooler, server, request.param == "true"
        finally:
            stop(process)


def test_a_read_answers_right_in_either_server_session(app_behind_the_pooler, issue_token):
    pooler, server, pooling = app_behind_the_pooler
    headers = {"Authorization": f"Bearer {issue_token('finance')}"}
    created = server.request(
        "POST", "/api/v1/sessions", body={"role": "finance", "metadata": {"n": 1}}, headers=headers
    )
    assert created.status == 201, created.body
    session_id = created.json()["session_id"]

    sessions_used = set()
    for turn in range(6):
        sessions_used.add(pooler.run_the_app_in(turn))
        for _ in range(3):
            read = server.request("GET", f"/api/v1/sessions/{session_id}", headers=headers)
            assert read.status == 200, read.body
            assert (read.json()["session_id"], read.json()["metadata"]) == (session_id, {"n": 1})

    assert len(sessions_used) == SERVER_SESSIONS
    prepared = pooler.prepared_reads_in_each_session()
    if pooling:
        assert prepared == [0] * SERVER_SESSIONS
    else:
        # Misconfigured, the app prepares its read in each session it meets, and still reads right.
        assert sum(prepared) > 0


def test_keyed_writes_replays_and_a_task_s_lease_hold_from_session_to_session(app_behind_the_pooler, issue_token):
    pooler, server, _ = app_behind_the_pooler
    finance = {"Authorization": f"Bearer {issue_token('finance')}"}
    engineering = {"Authorization": f"Bearer {issue_token('engineering')}"}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"role": "finance"}

    pooler.run_the_app_in(0)
    first = server.request("POST", "/api/v1/sessions", body=body, headers={**finance, **key})
    pooler.run_the_app_in(1)
    replay = server.request("POST", "/api/v1/sessions", body=body, headers={**finance, **key})
    pooler.run_the_app_in(2)
    other_body = server.request(
        "POST", "/api/v1/sessions", body={"role": "finance", "metadata": {}}, headers={**finance, **key}
    )

    assert first.status == 201, first.body
    assert (replay.status, replay.headers.get("idempotent-replayed"), replay.body) == (201, "true", first.body)
    assert other_body.status == 422

    pooler.run_the_app_in(3)
    routed = server.request(
        "POST",
        "/api/v1/tasks/route",
        body={"type": "invoice.check", "to_role": "engineering", "payload": {"n": 1}},
        headers={**finance, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert routed.status == 202, routed.body
    pooler.run_the_app_in(4)
    claimed = server.request("POST", "/api/v1/tasks/claim-next?to_role=engineering", body={}, headers=engineering)
    assert claimed.status == 200, claimed.body
    task_id, lease_token = claimed.json()["task_id"], claimed.json()["lease_token"]
    pooler.run_the_app_in(5)
    completed = server.request(
        "POST", f"/api/v1/tasks/{task_id}/complete", body={"lease_token": lease_token}, headers=engineering
    )
    assert completed.status == 200, completed.body
    assert completed.json()["status"] == "completed"


LONG_READ = """
import os, sys
import django
django.setup()
import psycopg
from django.db.backends.utils import CursorWrapper
from sessions.models import Session
from tests.test_transaction_pooler import hand_one_session_to_the_app

holders = [psycopg.connect(os.environ["POOLER_URL"]) for _ in range(2)]
turns = iter(range(1000))
hand_one_session_to_the_app(holders, next(turns))


def fetchmany_in_another_session(self, size=None):
    hand_one_session_to_the_app(holders, next(turns))
    with self.db.wrap_database_errors:
        return self.cursor.fetchmany(size)


CursorWrapper.fetchmany = fetchmany_in_another_session
print(len(list(Session.objects.order_by("pk").iterator(chunk_size=2))))
"""


@pytest.mark.parametrize("pooling", ["true", "false"])
def test_a_long_read_outside_a_transaction_reads_every_row_though_each_fetch_reaches_another_session(
    transactional_db, finance, pooling
):
    for _ in range(5):
        assert finance.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 201
    with _pgbouncer() as pooler:
        env = app_env(DATABASE_URL=pooler.url, DATABASE_TRANSACTION_POOLING=pooling, POOLER_URL=pooler.url)
        completed = subprocess.run(
            [sys.executable, "-c", LONG_READ], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
    if pooling == "true":
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.strip() == "5"
    else:
        # Why the setting exists: a holdable cursor lives in the session that declared it.
        assert completed.returncode != 0
        assert "InvalidCursorName" in completed.stderr, completed.stderr


@pytest.mark.parametrize(("value", "pooling"), [("true", True), ("false", False), ("", False)])
def test_the_setting_reaches_the_database_backend(value, pooling):
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; print(settings.DATABASES['default']['TRANSACTION_POOLING'])",
        ],
        cwd=REPO,
        env=app_env(DATABASE_URL="postgresql://app@127.0.0.1:5432/app", DATABASE_TRANSACTION_POOLING=value),
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == str(pooling)
