"""/health/live answers while the process does; /health/ready answers 200 only while this instance can
serve: database up, migrations applied, the signing key loadable when one is configured."""

import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.db import OperationalError, connection

from tests.net import free_port
from tests.observability.conftest import once, run_against_a_silent_database, start_gunicorn, stop

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def test_ready_reports_every_check_and_answers_200_when_all_is_well(anonymous, db):
    response = anonymous.get("/api/v1/health/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "migrations": "ok",
            "signing_key": "not_configured",
            "cache": "ok",
            "broker": "ok",
        },
    }


@pytest.mark.django_db(transaction=True)
def test_live_stays_200_and_ready_is_503_when_the_database_refuses(anonymous, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse)
    connection.close()

    assert anonymous.get("/api/v1/health/live").json() == {"status": "ok"}
    response = anonymous.get("/api/v1/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unavailable"
    assert response.json()["checks"]["migrations"] == "unavailable"


def test_ready_is_503_while_the_configured_signing_key_cannot_be_read(anonymous, db, settings, tmp_path):
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "missing.key")
    assert anonymous.get("/api/v1/health/ready").status_code == 503
    assert anonymous.get("/api/v1/health/ready").json()["checks"]["signing_key"] == "unreadable"

    (tmp_path / "missing.key").write_bytes(b"")
    assert anonymous.get("/api/v1/health/ready").status_code == 503

    (tmp_path / "missing.key").write_bytes(_ed25519_pem())
    response = anonymous.get("/api/v1/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["signing_key"] == "ok"


# A throwaway EC key on secp112r1 (`openssl ecparam -name secp112r1 -genkey -noout`), a curve the
# cryptography library refuses to load.
SECP112R1_KEY = b"""-----BEGIN EC PRIVATE KEY-----
MD4CAQEEDnz43abJKybqwAOyhiIfoAcGBSuBBAAGoSADHgAEtyNnP6ycTYir/Dwn
iFi1MJu9AgzK0vBlpv28oA==
-----END EC PRIVATE KEY-----
"""


def test_ready_is_503_while_the_signing_key_file_holds_no_usable_ed25519_key(anonymous, db, settings, tmp_path):
    # Sealing would fail to sign with any of these: readable is not enough.
    key_file = tmp_path / "signing.key"
    settings.AUDIT_SIGNING_KEY_FILE = str(key_file)
    rsa = rsa_key.generate_private_key(public_exponent=65537, key_size=1024)
    for content in (
        b"this is not a PEM private key",
        b"-----BEGIN PRIVATE KEY-----\n",
        rsa.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        # On a curve cryptography cannot load: UnsupportedAlgorithm, neither ValueError nor TypeError.
        SECP112R1_KEY,
    ):
        key_file.write_bytes(content)
        response = anonymous.get("/api/v1/health/ready")
        assert response.status_code == 503, content[:40]
        assert response.json()["checks"]["signing_key"] == "invalid"


def _ed25519_pem():
    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def test_a_dead_cache_is_reported_but_does_not_make_the_instance_unready(anonymous, db, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }

    response = anonymous.get("/api/v1/health/ready")

    assert response.status_code == 200
    assert response.json()["checks"]["cache"] == "degraded"


class ThrowawayPostgres:
    """A PostgreSQL cluster of this test's own, on a free port, that the test stops and starts."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="orch-ready-pg-"))
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(f"{PG_BIN}/initdb -D {self.data} -U postgres --auth=trust -E UTF8 --no-locale")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.data}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        self.start()
        self._as_postgres(f"{PG_BIN}/createdb -h 127.0.0.1 -p {self.port} -U postgres orchestrator")

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/orchestrator"

    def manage(self, *command):
        """Run `manage.py *command` against this cluster; its standard output."""
        return subprocess.run(
            [os.sys.executable, "manage.py", *command],
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "DATABASE_URL": self.url},
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def migrate_and_issue_token(self, role):
        self.manage("migrate", "--noinput")
        return self.manage("issue_token", "--role", role).strip().splitlines()[-1]

    def _as_postgres(self, command):
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], check=True, capture_output=True)

    def start(self):
        self._as_postgres(f"{PG_BIN}/pg_ctl -D {self.data} -l {self.dir}/server.log -w start")

    def stop(self):
        self._as_postgres(f"{PG_BIN}/pg_ctl -D {self.data} -m fast -w stop")

    def remove(self):
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", f"{PG_BIN}/pg_ctl -D {self.data} -m immediate -w stop"],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


class ThrowawayStandby(ThrowawayPostgres):
    """A hot standby of `primary`, streaming from it: reads answer, every write is refused."""

    def __init__(self, primary):
        self.dir = Path(tempfile.mkdtemp(prefix="orch-standby-pg-"))
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(
            f"{PG_BIN}/pg_basebackup -h 127.0.0.1 -p {primary.port} -U postgres -D {self.data} -R -X stream --checkpoint=fast"
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nunix_socket_directories = '{self.data}'\nhot_standby = on\n")
        self.start()


def wait_for(server, path, status):
    return once(lambda: server.request("GET", path), lambda answer: answer.status == status, timeout=20.0, interval=0.2)


@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries are not installed")
def test_ready_goes_503_when_postgresql_stops_and_200_when_it_is_back_while_live_stays_200(tmp_path):
    postgres = ThrowawayPostgres()
    process = None
    try:
        postgres.manage("migrate", "--noinput")
        process, server = start_gunicorn(tmp_path, workers=2, DATABASE_URL=postgres.url)
        assert server.request("GET", "/api/v1/health/ready").status == 200

        postgres.stop()
        down = [server.request("GET", "/api/v1/health/ready") for _ in range(4)]
        assert {answer.status for answer in down} == {503}
        assert {answer.json()["checks"]["database"] for answer in down} == {"unavailable"}
        assert {server.request("GET", "/api/v1/health/live").status for _ in range(4)} == {200}

        postgres.start()
        back = wait_for(server, "/api/v1/health/ready", 200)
        assert back.status == 200, back.body
        assert {server.request("GET", "/api/v1/health/ready").status for _ in range(4)} == {200}
        assert server.request("GET", "/api/v1/health/live").status == 200
    finally:
        if process is not None:
            stop(process)
        postgres.remove()


def test_ready_stays_200_when_a_workers_kept_connection_was_cut_but_the_database_is_up(transactional_db, tmp_path):
    # What a database restart leaves behind in a worker that served nothing while it was down:
    # a kept connection the server has closed. The database is up, so the instance is ready.
    process, server = start_gunicorn(tmp_path, workers=1)
    try:
        assert server.request("GET", "/api/v1/health/ready").status == 200
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1

        answers = [server.request("GET", "/api/v1/health/ready") for _ in range(3)]
        assert [answer.status for answer in answers] == [200, 200, 200], answers[0].body
    finally:
        stop(process)


PROBE_READINESS = """
import json, time
import django
django.setup()
from orchestrator.http.health import readiness
started = time.monotonic()
ready, checks = readiness()
print(json.dumps({"ready": ready, "database": checks["database"], "seconds": time.monotonic() - started}))
"""


def test_ready_answers_unavailable_within_the_connect_timeout_when_the_database_host_never_answers():
    # A host that takes the TCP connection and then says nothing, as a hung server or a
    # half-dead proxy does: without a bound of ours, psycopg waits its default 130 s for the first answer.
    run = run_against_a_silent_database(PROBE_READINESS)
    completed = run.completed
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["ready"] is False
    assert report["database"] == "unavailable"
    # One attempt of 2 s, bounded: a fresh connection that failed is not tried again (two would be 4 s).
    assert run.connections == 1
    assert 1.5 < report["seconds"] < 3.5


@pytest.mark.django_db(transaction=True)
def test_live_is_200_with_database_cache_and_broker_all_dead(anonymous, monkeypatch, settings):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/1"
    monkeypatch.setattr(connection, "ensure_connection", refuse)
    connection.close()

    response = anonymous.get("/api/v1/health/live", HTTP_AUTHORIZATION="Bearer garbage")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    ready = anonymous.get("/api/v1/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "unavailable"


def test_an_app_cannot_add_a_readiness_check_under_a_name_the_kernel_reports():
    # It would overwrite the database's answer with its own, or have its answer overwritten.
    from orchestrator.http.readiness import add_readiness_check

    for name in ("database", "migrations", "cache", "broker"):
        with pytest.raises(ValueError, match="the kernel reports"):
            add_readiness_check(name, lambda: "ok", ready_when={"ok"})


def test_ready_is_503_while_the_database_takes_no_writes(anonymous, read_only_database):
    response = anonymous.get("/api/v1/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "read_only"


@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries are not installed")
def test_on_a_hot_standby_ready_is_503_read_only_writes_are_503_and_reads_answer(tmp_path):
    """What an instance sees when DATABASE_URL points at a standby (a failover not yet followed): a
    real streaming replica, not a setting."""
    primary = ThrowawayPostgres()
    standby = None
    process = None
    try:
        token = primary.migrate_and_issue_token("finance")
        standby = ThrowawayStandby(primary)
        process, server = start_gunicorn(tmp_path, workers=1, DATABASE_URL=standby.url)
        credentials = {"Authorization": f"Bearer {token}"}

        ready = server.request("GET", "/api/v1/health/ready")
        assert ready.status == 503
        assert ready.json()["checks"]["database"] == "read_only"
        assert ready.json()["checks"]["migrations"] == "ok"
        for key in ({}, {"Idempotency-Key": "standby-1"}):
            refused = server.request(
                "POST", "/api/v1/sessions", body={"role": "finance"}, headers={**credentials, **key}
            )
            assert refused.status == 503, refused.body
            assert refused.json()["type"].endswith("/database_read_only")
        assert server.request("GET", "/api/v1/sessions", headers=credentials).status == 200
        assert "Traceback" not in server.log.read_text()
    finally:
        if process is not None:
            stop(process)
        if standby is not None:
            standby.remove()
        primary.remove()


@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries are not installed")
def test_once_the_database_takes_writes_again_the_instance_does_at_once_without_waiting_out_kept_connections(
    tmp_path,
):
    """A failover as a worker with kept connections sees it: the database it is connected to turns
    read-only (a demoted primary), then writes are possible again (the name points at the new
    primary). The worker must not keep its read-only connection for DATABASE_CONN_MAX_AGE."""
    postgres = ThrowawayPostgres()
    process = None
    try:
        token = postgres.migrate_and_issue_token("finance")
        process, server = start_gunicorn(tmp_path, workers=1, DATABASE_URL=postgres.url, DATABASE_CONN_MAX_AGE="600")
        credentials = {"Authorization": f"Bearer {token}"}

        def write():
            return server.request("POST", "/api/v1/sessions", body={"role": "finance"}, headers=credentials)

        assert write().status == 201
        admin = psycopg.connect(postgres.url, autocommit=True)
        try:
            admin.execute("ALTER DATABASE orchestrator SET default_transaction_read_only = on")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = 'orchestrator' AND pid <> pg_backend_pid()"
            )
            # The worker's next connections are read-only: writes and readiness say so.
            answers = [write() for _ in range(3)]
            assert answers[-1].status == 503 and answers[-1].json()["type"].endswith("/database_read_only")
            assert server.request("GET", "/api/v1/health/ready").json()["checks"]["database"] == "read_only"
            assert write().status == 503
            admin.execute("ALTER DATABASE orchestrator RESET default_transaction_read_only")
            # The first write after the failover succeeds: the refused one dropped its connection.
            assert write().status == 201

            admin.execute("ALTER DATABASE orchestrator SET default_transaction_read_only = on")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = 'orchestrator' AND pid <> pg_backend_pid()"
            )
            write()  # the cut connection: 503, and a new one for the next request
            assert server.request("GET", "/api/v1/health/ready").json()["checks"]["database"] == "read_only"
            admin.execute("ALTER DATABASE orchestrator RESET default_transaction_read_only")
        finally:
            admin.close()

        # And the first probe after it says ready: the read-only probe dropped its connection too.
        ready = server.request("GET", "/api/v1/health/ready")
        assert ready.status == 200, ready.body
    finally:
        if process is not None:
            stop(process)
        postgres.remove()


@pytest.mark.django_db(transaction=True)
def test_a_probe_answered_503_is_one_warning_of_the_failing_check_not_an_error_line_per_probe(
    anonymous, monkeypatch, caplog
):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse)
    connection.close()
    caplog.set_level(logging.INFO)

    for path in ("/api/v1/health/ready", "/api/v1/health"):
        assert anonymous.get(path).status_code == 503

    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert any("database unavailable" in record.getMessage() for record in caplog.records)
