"""Behind a real PgBouncer in transaction mode (DATABASE_TRANSACTION_POOLING=true) every answer stays
right, though each of a worker's transactions may run in another server session: reads prepared in
one session and executed in another, keyed writes and their replays, a task routed, claimed and
completed, and the audit commands' long reads.

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


@dataclass
class Pooler:
    url: str
    holders: list[psycopg.Connection]
    pids: list[int]

    def run_the_app_in(self, turn):
        """Let go of one server session (by turns) so that the app's statements until the next
        call run in it alone; returns that session's backend pid."""
        for index, holder in enumerate(self.holders):
            if holder.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                # The session let go of last turn is held again; the app is idle between requests.
                self.pids[index] = holder.execute("SELECT pg_backend_pid()").fetchone()[0]
        index = turn % SERVER_SESSIONS
        self.holders[index].rollback()
        return self.pids[index]


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
        yield Pooler(url, holders, pids)
    finally:
        for holder in holders:
            holder.close()
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def app_behind_the_pooler(transactional_db, tmp_path):
    with _pgbouncer() as pooler:
        # The server sessions are free while the app starts (gunicorn asks its readiness first).
        for holder in pooler.holders:
            holder.rollback()
        process, server = start_gunicorn(
            tmp_path, workers=1, DATABASE_URL=pooler.url, DATABASE_TRANSACTION_POOLING="true"
        )
        try:
            yield pooler, server
        finally:
            stop(process)


def test_a_read_prepared_in_one_server_session_answers_right_in_the_other(app_behind_the_pooler, issue_token):
    pooler, server = app_behind_the_pooler
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


def test_keyed_writes_replays_and_a_task_s_lease_hold_from_session_to_session(app_behind_the_pooler, issue_token):
    pooler, server = app_behind_the_pooler
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


def test_the_audit_commands_long_reads_run_through_the_pooler(transactional_db, finance):
    for _ in range(3):
        assert finance.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 201
    with _pgbouncer() as pooler:
        for holder in pooler.holders:
            holder.rollback()
        env = app_env(DATABASE_URL=pooler.url, DATABASE_TRANSACTION_POOLING="true")
        for command in (["seal_audit"], ["verify_audit"]):
            completed = subprocess.run(
                [sys.executable, "manage.py", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
            )
            assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize(("value", "fetched_at_once"), [("true", True), ("false", False), ("", False)])
def test_transaction_pooling_turns_server_side_cursors_off(value, fetched_at_once):
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; print(settings.DATABASES['default']['DISABLE_SERVER_SIDE_CURSORS'])",
        ],
        cwd=REPO,
        env=app_env(DATABASE_URL="postgresql://app@127.0.0.1:5432/app", DATABASE_TRANSACTION_POOLING=value),
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == str(fetched_at_once)
