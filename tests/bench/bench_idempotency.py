"""Replayed versus first requests of POST /api/v1/sessions with an Idempotency-Key, in the same run.

One gunicorn server of ours on a fresh PostgreSQL database answers, in turns (ABBA across
rounds):
  first    every request carries a new key: the session is created and the record stored
  replay   every request repeats one of a few hundred keys already answered: the stored answer
           is replayed (from Redis when REDIS_URL is set, else from the database)
  no-key   the same POST without a key, for scale: what the mechanism adds to a first request
and prints requests per second and the ratios replay/first and first/no-key. A replay does no
database write (tests/idempotency/test_replay.py counts its queries); here we only see what
that buys. Self-contained on purpose (no shared harness), so it runs on its own:

    python -m tests.bench.bench_idempotency
    BENCH_DURATION=5 BENCH_ROUNDS=2 BENCH_CONNECTIONS=8 BENCH_WORKERS=4 python -m tests.bench.bench_idempotency

It uses DATABASE_URL's server (default the one scripts/services.sh starts) and creates and
drops its own database there; REDIS_URL, when set, is passed to the server unchanged.
"""

import contextlib
import http.client
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

BASE_DIR = Path(__file__).resolve().parents[2]
DATABASE = "orch_bench_idempotency"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:54329/orchestrator"
BODY = b'{"role": "finance", "metadata": {"bench": true}}'
REPLAY_KEYS = 300


def knob(name, default):
    return int(os.environ.get(name) or default)


def database_url(name):
    parts = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    return urlunsplit(parts._replace(path="/" + name))


def recreate_database(name, *, drop_only=False):
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def app_env(url):
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="orchestrator.settings",
        DATABASE_URL=url,
        DEBUG="false",
        SECRET_KEY="bench-secret-key-not-for-production-0123456789abcdef",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
    )
    return env


def manage(env, *args):
    completed = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{completed.stdout}{completed.stderr}")
    return completed.stdout


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(env, *, workers):
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--log-level", "warning",
        "orchestrator.wsgi:application",
    ]
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {process.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/v1/health")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start within 30 s")
                time.sleep(0.1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def post(conn, token, key):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    conn.request("POST", "/api/v1/sessions", body=BODY, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status, response.getheader("Idempotent-Replayed")


def load(port, token, next_key, *, expect_replay, connections, seconds):
    """Requests per second of POSTs whose keys come from next_key(); raises on any unexpected answer."""
    done = []
    failures = []
    stop_at = time.monotonic() + seconds

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        count = 0
        while time.monotonic() < stop_at:
            status, replayed = post(conn, token, next_key())
            if status != 201 or (replayed == "true") != expect_replay:
                failures.append((status, replayed))
            count += 1
        conn.close()
        done.append(count)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if failures:
        raise RuntimeError(f"{len(failures)} unexpected answers, e.g. {failures[:3]}")
    return sum(done) / elapsed


def main():
    seconds = knob("BENCH_DURATION", 10)
    rounds = knob("BENCH_ROUNDS", 3)
    connections = knob("BENCH_CONNECTIONS", 8)
    workers = knob("BENCH_WORKERS", 2 * (os.cpu_count() or 1))
    url = recreate_database(DATABASE)
    try:
        env = app_env(url)
        manage(env, "migrate", "--noinput")
        token = manage(env, "issue_token", "--role", "finance").strip().splitlines()[-1]
        with gunicorn(env, workers=workers) as port:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            replay_keys = [f"bench-{uuid.uuid4()}" for _ in range(REPLAY_KEYS)]
            for key in replay_keys:
                if post(conn, token, key) != (201, None):
                    raise RuntimeError("could not create the sessions to replay")
            cycle = itertools.cycle(replay_keys)
            lock = threading.Lock()

            def next_replay():
                with lock:
                    return next(cycle)

            kinds = {
                "first": (lambda: f"bench-{uuid.uuid4()}", False),
                "replay": (next_replay, True),
                "no-key": (lambda: None, False),
            }
            # Warm-up: with the local-memory cache each worker fills its own copy on its first replays.
            load(port, token, next_replay, expect_replay=True, connections=connections, seconds=2)
            samples = {name: [] for name in kinds}
            for number in range(rounds):
                order = list(kinds) if number % 2 == 0 else list(reversed(kinds))
                for name in order:
                    next_key, expect_replay = kinds[name]
                    rps = load(port, token, next_key, expect_replay=expect_replay, connections=connections, seconds=seconds)
                    samples[name].append(rps)
    finally:
        recreate_database(DATABASE, drop_only=True)

    rps = {name: statistics.median(values) for name, values in samples.items()}
    cache = "Redis" if os.environ.get("REDIS_URL") else "local memory (per worker)"
    print(f"POST /api/v1/sessions, gunicorn {workers} sync workers, {connections} connections, "
          f"{rounds} rounds of {seconds} s, cache: {cache}")
    for name, value in rps.items():
        print(f"  {name:<7} {value:9.1f} req/s")
    print(f"  replay / first : {rps['replay'] / rps['first']:.2f}x")
    print(f"  first / no-key : {rps['first'] / rps['no-key']:.2f}x  (the cost of storing the record)")


if __name__ == "__main__":
    main()
