"""Shared pieces for the benchmarks in tests/bench (run them all with `make bench`).

A benchmark is a module tests/bench/bench_<name>.py that runs on its own
(`python -m tests.bench.bench_<name>`, from the repository root) and prints what it
measured, as ratios against baselines measured in the same run (never absolute
targets: the machine varies). `python -m tests.bench` runs every such module in turn.
Benchmarks are not tests: no timing asserts anywhere, and pytest does not collect them.

What this module gives them:

    from tests.bench import harness

    url = harness.fresh_database("orch_bench_x")            # empty database on the DATABASE_URL server
    harness.migrate(url)                                      # our schema in it (manage.py migrate)
    url = harness.fresh_database("orch_bench_x2", template="orch_bench_x")  # fast copy of a migrated one
    harness.sql(url, "INSERT ...")                            # run SQL (psycopg, autocommit)
    token = harness.issue_token(url, role="finance")          # a local API token ("orch_...")

    env = harness.app_env(url)                                # production-like env: DEBUG off, no SSL redirect
    with harness.gunicorn("orchestrator.wsgi:application", env=env) as base_url:
        harness.check_answer(base_url, "GET", "/api/v1/health", expected_status=200)   # one request before the load
        result = harness.http_load(base_url + "/api/v1/sessions", method="POST",
                                   body=b'{"role": "finance"}', headers={"Authorization": f"Bearer {token}"})
        print(result.rps, result.errors)                      # errors = non-2xx/3xx answers + socket errors
        harness.http_load(base_url, paths=["/api/v1/sessions/<id>", ...])   # GET, cycling through paths

    harness.pgbench(url, "BEGIN; ...; COMMIT;", clients=4).tps  # the database's own limit for that SQL
    harness.pgbench(url, claim_script, transactions=12500).tps  # a fixed count per client instead of a time
    figures = harness.in_turns({"ours": measure_ours, "naive": measure_naive})  # ABBA rounds, medians
    harness.print_ratios("Session POST", {"ours": 812.0, "naive": 640.0, "pgbench": 5100.0})
    print(harness.machine())                                  # cores and load average, to print with figures

Knobs from the environment, so `make bench` needs no arguments:
    BENCH_DURATION     seconds per measurement (default 10)
    BENCH_CONNECTIONS  concurrent HTTP connections / pgbench clients (default 4)
    BENCH_WORKERS      gunicorn workers (default 2 * cores + 1, the same for every app compared)
    BENCH_ROUNDS       how many times a comparison is repeated; modules report the median (default 1)
The database server comes from DATABASE_URL (`make bench` starts a durable one on port 25433,
the default here; `harness.require_durable_database()` refuses any other unless BENCH_ALLOW_FAST_DB=1);
the HTTP load comes from `wrk` (installed with apt-get when missing and possible), else from a
Python keep-alive load generator (one http.client connection per thread).
"""

import atexit
import concurrent.futures
import contextlib
import functools
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.net import free_port

BASE_DIR = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
# The durable server `make bench` starts (scripts/services.sh with PG_DURABLE=1, port 25433).
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:25433/orchestrator"
DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


def _env_number(name, default, kind=int):
    value = os.environ.get(name)
    return kind(value) if value else default


def duration():
    return _env_number("BENCH_DURATION", 10.0, float)


def connections():
    return _env_number("BENCH_CONNECTIONS", 4)


def workers():
    return _env_number("BENCH_WORKERS", 2 * (os.cpu_count() or 1) + 1)


def rounds():
    return _env_number("BENCH_ROUNDS", 1)


# --- PostgreSQL -------------------------------------------------------------------------


def database_url(name):
    """DATABASE_URL with its database name replaced by `name`."""
    parts = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    return urlunsplit(parts._replace(path="/" + name))


def _name(url):
    return urlsplit(url).path.lstrip("/")


def _quote(identifier):
    return '"' + identifier.replace('"', '""') + '"'


def fresh_database(name, *, template=None):
    """Drop `name` if it exists and create it empty (or as a copy of `template`); return its URL."""
    _announce_durability()
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
        suffix = f" TEMPLATE {_quote(template)}" if template else ""
        conn.execute(f"CREATE DATABASE {_quote(name)}{suffix}")
    return database_url(name)


def drop_database(name):
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")


def sql(url, statement, params=None):
    """Run one statement in autocommit mode; return its rows (or None when it returns none)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def durability(url):
    """The server's durability settings, to print beside figures: {"fsync": "on", ...}."""
    return {name: sql(url, f"SHOW {name}")[0][0] for name in DURABILITY_SETTINGS}


_announced = []


def _announce_durability():
    if not _announced:
        _announced.append(True)
        print(f"database server: {require_durable_database()}", flush=True)


def require_durable_database():
    """Benchmarks measure what production runs: a server with fsync or synchronous_commit off
    commits several times faster and hides the cost of every write. BENCH_ALLOW_FAST_DB=1
    allows one anyway (a quick look on a laptop), and the figures then say so."""
    settings = durability(database_url("postgres"))
    described = ", ".join(f"{name}={value}" for name, value in settings.items())
    if any(value != "on" for value in settings.values()):
        if os.environ.get("BENCH_ALLOW_FAST_DB") != "1":
            raise SystemExit(f"the benchmark database is not durable ({described}); run `make bench`")
        return f"NOT durable ({described})"
    return f"durable ({described})"


# Every process of our app a benchmark starts, its servers and its commands alike: as production runs.
_PRODUCTION_SETTINGS = {
    "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
    "DEBUG": "false",
    "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
}


def app_env(url, **extra):
    """The environment for our app on `url`: production-like (DEBUG off, static files collected),
    plain HTTP on loopback."""
    env = dict(os.environ)
    env.update(_PRODUCTION_SETTINGS)
    env.update(
        DATABASE_URL=url,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
        STATIC_ROOT=str(collected_static_root()),
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


@functools.cache
def collected_static_root():
    """A STATIC_ROOT filled by `collectstatic` once per run, as a deployment's is: without it each
    worker logged ops.W001 at start, hundreds of lines through a run. Removed when the run ends."""
    root = Path(tempfile.mkdtemp(prefix="orch-bench-static-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    env = {**os.environ, **_PRODUCTION_SETTINGS, "STATIC_ROOT": str(root)}
    command = [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"]
    subprocess.run(command, cwd=BASE_DIR, env=env, check=True, capture_output=True)
    return root


def manage(url, *args, env=None):
    """Run a manage.py command against `url`; return its stdout."""
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env or app_env(url),
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{completed.stdout}{completed.stderr}")
    return completed.stdout


def migrate(url):
    manage(url, "migrate", "--noinput")


def issue_token(url, *, role, staff=False):
    args = ["issue_token", "--role", role] + (["--staff"] if staff else [])
    return manage(url, *args).strip().splitlines()[-1]


# --- gunicorn ---------------------------------------------------------------------------


def _wait_until_serving(port, process, ready_path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", ready_path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer on port {port} within {timeout} s")


# Base URL -> the pid of the gunicorn master serving it (the leader of its process group).
_servers: dict[str, int] = {}


def server_cpu_seconds(base_url):
    """CPU time (user + system) the server at `base_url` has used so far: its master and its workers,
    every process of its process group, read from /proc. The difference across a load, divided by the
    requests served, is what one request cost the server, however the machine shared its cores."""
    group = _servers[base_url]
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        # After the command's closing parenthesis: state, ppid, pgrp, ... utime (12th), stime (13th).
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def gunicorn(app, *, env, workers=None, worker_class="sync", threads=1, extra_args=(), ready_path="/", log_file=None):
    """Serve the WSGI `app` ("module:callable") on a free loopback port; yield its base URL.

    A worker has answered a GET of `ready_path` (any status) before this yields;
    the server is stopped (SIGTERM, then SIGKILL) on exit. With `log_file` (an open file) the
    server's stdout and stderr go there, so writing its logs costs what it costs in production.
    """
    port = free_port()
    command = [
        str(BIN_DIR / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers or globals()["workers"]()),
        "--worker-class",
        worker_class,
        "--threads",
        str(threads),
        "--chdir",
        str(BASE_DIR),
        "--log-level",
        "warning",
        *extra_args,
        app,
    ]
    process = subprocess.Popen(
        command, cwd=BASE_DIR, env=env, start_new_session=True, stdout=log_file, stderr=log_file and subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(port, process, ready_path)
        _servers[base_url] = process.pid
        yield base_url
    finally:
        _servers.pop(base_url, None)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def stand_in(env, **options):
    """An idle copy of our app, started before the servers a benchmark compares and never measured.

    Of servers started one after another, the first runs 3 to 5 % slower than an identical server
    started after it, for as long as they run (docs/benchmarks.md, eighth session; the cause was not
    found). A stand-in of our app takes that place; a bare WSGI app does not. Give it its own
    PROMETHEUS_MULTIPROC_DIR if `env` has one: gunicorn_conf empties that directory at start."""
    with gunicorn("orchestrator.wsgi:application", env=env, ready_path="/api/v1/health/live", **options):
        yield


# --- HTTP load --------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int

    @property
    def rps(self):
        return self.requests / self.seconds if self.seconds else 0.0


def _wrk_binary():
    found = shutil.which("wrk")
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    subprocess.run(
        "apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1",
        shell=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("wrk")


def _lua_string(value):
    if isinstance(value, bytes):
        value = value.decode()
    return "[==[" + value + "]==]"


def _wrk_script(method, paths, body, headers, key_prefix, keys=None, expect_replayed=None):
    lines = [f"wrk.method = {_lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    for name, value in headers.items():
        lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    lines.append("local paths = {" + ", ".join(_lua_string(p) for p in paths or []) + "}")
    lines.append("local i = 0")
    # A fresh Idempotency-Key per request, as agents send them: a run-unique prefix and a counter.
    key_line = f"  wrk.headers['Idempotency-Key'] = {_lua_string(key_prefix)} .. i\n" if key_prefix else ""
    if keys:
        # Or keys already answered, in turn: every request a retry.
        lines.append("local keys = {" + ", ".join(_lua_string(key) for key in keys) + "}")
        key_line = "  wrk.headers['Idempotency-Key'] = keys[(i - 1) % #keys + 1]\n"
    if expect_replayed is not None:
        # Every answer checked in wrk itself: a 2xx whose Idempotent-Replayed is not as expected is
        # reported on stderr, which fails the load (_wrk_load).
        lines.append(
            "local reported = false\n"
            "response = function(status, headers, body)\n"
            "  local replayed = headers['Idempotent-Replayed'] == 'true'\n"
            f"  if status < 300 and replayed ~= {'true' if expect_replayed else 'false'} and not reported then\n"
            "    reported = true\n"
            "    io.stderr:write('answered ' .. status .. ' with Idempotent-Replayed ' .. tostring(headers['Idempotent-Replayed']) .. '\\n')\n"
            "  end\n"
            "end"
        )
    lines.append(
        "request = function()\n  i = i + 1\n"
        + key_line
        + "  if #paths > 0 then return wrk.format(nil, paths[(i - 1) % #paths + 1]) end\n"
        + "  return wrk.format()\nend"
    )
    return "\n".join(lines) + "\n"


def _parse_wrk(output):
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(3)]
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        # gunicorn's sync workers close the connection after each answer; wrk counts the
        # close it sees while reading as a "read" error, so only connect/write/timeout count.
        errors += int(socket_errors.group(1)) + int(socket_errors.group(3)) + int(socket_errors.group(4))
    return LoadResult(requests=int(match.group(1)), seconds=float(match.group(2)) * scale, errors=errors)


def _wrk_load(wrk, url, method, paths, body, headers, conns, seconds, key_prefix, keys, expect_replayed):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_wrk_script(method, paths, body, headers, key_prefix, keys, expect_replayed))
    try:
        completed = subprocess.run(
            [
                wrk,
                "-t",
                "1",
                "-c",
                str(conns),
                "-d",
                f"{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(script.name)
    # wrk reports a broken script on stderr and then runs anyway, with plain GETs.
    if completed.returncode != 0 or completed.stderr.strip():
        raise RuntimeError(f"wrk failed:\n{completed.stdout}{completed.stderr}")
    return _parse_wrk(completed.stdout)


def _python_load(url, method, paths, body, headers, conns, seconds, key_prefix, keys, expect_replayed):
    parts = urlsplit(url)
    paths = paths or [parts.path or "/"]
    counts = [[0, 0] for _ in range(conns)]
    deadline = time.monotonic() + seconds

    def worker(slot):
        conn = None
        i = slot
        while time.monotonic() < deadline:
            path = paths[i % len(paths)]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                sent = {**headers, "Idempotency-Key": f"{key_prefix}{slot}-{i}"} if key_prefix else headers
                if keys:
                    sent = {**headers, "Idempotency-Key": keys[i % len(keys)]}
                conn.request(method, path, body=body, headers=sent)
                response = conn.getresponse()
                response.read()
                counts[slot][0] += 1
                replayed = response.getheader("Idempotent-Replayed") == "true"
                if response.status >= 400 or (expect_replayed is not None and replayed != expect_replayed):
                    counts[slot][1] += 1
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                counts[slot][1] += 1
                if conn is not None:
                    conn.close()
                conn = None

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return LoadResult(requests=sum(c[0] for c in counts), seconds=elapsed, errors=sum(c[1] for c in counts))


def http_load(
    url,
    *,
    method="GET",
    paths=None,
    body=None,
    headers=None,
    connections=None,
    duration=None,
    fresh_keys=None,
    keys=None,
    expect_replayed=None,
):
    """Send requests to `url` (or cycle through `paths` on its host) for `duration` seconds
    over `connections` concurrent connections; return the count, the time and the errors.

    Writes carry a fresh Idempotency-Key each (a key never sent before), as agents send them;
    `fresh_keys=False` leaves the header out, for the figure without it, and `keys` (keys already
    answered) sends those in turn, every request a retry. With `expect_replayed` (True or False) an
    answer whose Idempotent-Replayed header says otherwise is an error (with wrk: the load fails)."""
    if fresh_keys is None:
        fresh_keys = method in ("POST", "PUT", "PATCH") and not keys
    key_prefix = f"bench-{uuid.uuid4().hex}-" if fresh_keys else None
    headers = dict(headers or {})
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    conns = connections or globals()["connections"]()
    seconds = duration or globals()["duration"]()
    wrk = _wrk_binary()
    arguments = (url, method, paths, body, headers, conns, seconds, key_prefix, keys, expect_replayed)
    if wrk:
        return _wrk_load(wrk, *arguments)
    return _python_load(*arguments)


def check_answer(base_url, method, path, *, body=None, headers=None, expected_status):
    """One request before the load: a benchmark of error answers would measure nothing."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    if response.status != expected_status:
        raise RuntimeError(f"{method} {path} answered {response.status}, not {expected_status}: {payload[:500]!r}")


# --- pgbench ----------------------------------------------------------------------------


@dataclass
class PgbenchResult:
    transactions: int
    tps: float
    failed: int


def pgbench(url, script, *, clients=None, duration=None, transactions=None, protocol="prepared"):
    """Run the pgbench `script` (custom script text) against `url`; the tps excludes connection time.

    It runs for `duration` seconds, or, given `transactions`, until every client has run that
    many (for a script that uses something up, such as a queue of rows to claim)."""
    clients = clients or connections()
    seconds = duration or globals()["duration"]()
    limit = ["--transactions", str(transactions)] if transactions else ["--time", str(max(1, round(seconds)))]
    parts = urlsplit(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
        file.write(script)
    try:
        completed = subprocess.run(
            [
                shutil.which("pgbench") or "pgbench",
                "--no-vacuum",
                "--protocol",
                protocol,
                "--client",
                str(clients),
                "--jobs",
                str(min(clients, os.cpu_count() or 1)),
                *limit,
                "--file",
                file.name,
                "--host",
                parts.hostname or "127.0.0.1",
                "--port",
                str(parts.port or 5432),
                "--username",
                parts.username or "postgres",
                _name(url),
            ],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(file.name)
    output = completed.stdout + completed.stderr
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    processed = re.search(r"number of transactions actually processed: (\d+)", output)
    if completed.returncode != 0 or not tps or not processed:
        raise RuntimeError(f"pgbench failed:\n{output}")
    failed = re.search(r"number of failed transactions: (\d+)", output)
    return PgbenchResult(
        transactions=int(processed.group(1)), tps=float(tps.group(1)), failed=int(failed.group(1)) if failed else 0
    )


# --- A job running beside the load -----------------------------------------------------


class BackgroundJob:
    """`python -m <module> <flag>` in its own process while a measurement runs: it prints "ready"
    once Django is up (start-up is not charged to the measurement), works until SIGTERM, then prints
    one line of results, kept in `output`."""

    def __init__(self, module, flag, *, env, timeout=300):
        self.command = [sys.executable, "-m", module, flag]
        self.env = env
        self.timeout = timeout
        self.output = ""

    def __enter__(self):
        self.process = subprocess.Popen(self.command, cwd=BASE_DIR, env=self.env, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{' '.join(self.command[2:])} did not start")
        return self

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=self.timeout)
        if self.process.returncode != 0:
            raise RuntimeError(f"{' '.join(self.command[2:])} exited with status {self.process.returncode}")
        self.output = out.strip()


# --- In-process timing ------------------------------------------------------------------


def batched_update(sql, batch_size):
    """The bare baseline of a batched job: run `sql` (an UPDATE of at most %s rows) in its own
    transaction until a batch comes back short; return the rows it moved. Needs Django set up."""
    from django.db import connection, transaction

    moved = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [batch_size])
            count = cursor.rowcount
        moved += count
        if count < batch_size:
            return moved


def timed(function, *args, **kwargs):
    """(what `function` returned, the seconds it took)."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


# --- Reporting --------------------------------------------------------------------------


def machine():
    """Cores and load average: figures taken on a busy machine say so."""
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


def median(values):
    return statistics.median(values)


def turns(measures, *, round_count=None):
    """Run each measure (name -> function returning a rate) once per round, in ABBA order across
    rounds (forward, then backward), so a change in background load hits all of them alike;
    return each one's rates, round by round."""
    samples = {name: [] for name in measures}
    for round_number in range(round_count or rounds()):
        order = list(measures) if round_number % 2 == 0 else list(reversed(measures))
        for name in order:
            samples[name].append(measures[name]())
    return samples


def side_by_side(measures, *, round_count=None):
    """Run every measure at the same time, once per round (each load from its own wrk process, each
    server with its own workers), and return each one's rates, round by round. The contenders share
    the machine at every instant, so a drift of its speed, which in turns() lands between two
    contenders' measurements, hits them alike; what separates their rates is what each request costs."""
    samples = {name: [] for name in measures}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(measures)) as pool:
        for _ in range(round_count or rounds()):
            running = {name: pool.submit(measure) for name, measure in measures.items()}
            for name, future in running.items():
                samples[name].append(future.result())
    return samples


def in_turns(measures):
    """turns(), each measure's median over the rounds."""
    return {name: median(values) for name, values in turns(measures).items()}


def round_ratios(samples, first, second):
    """first/second in each round, the two measured side by side."""
    return [a / b for a, b in zip(samples[first], samples[second], strict=True) if b]


def paired_ratio(samples, first, second):
    """The median over rounds of first/second measured side by side in each round: steadier than the
    ratio of the medians when the machine's speed drifts between rounds."""
    return median(round_ratios(samples, first, second))


def print_target(samples, first, second, target):
    """Print whether first/second reaches `target`, read as paired_ratio, with the ratio of every round
    beside it: the rates above are medians of each contender alone, and on a machine whose speed drifts
    their ratio can land on the other side of the target from the rounds' own."""
    ratio, rounds = _rounds_reading(samples, first, second)
    verdict = "met" if ratio >= target else "MISSED"
    print(f"  target {first}/{second} >= {target}: {ratio:.3f} {verdict} (median of the rounds: {rounds})")
    sys.stdout.flush()


def print_ratios_of_rounds(samples, first, second):
    """Print first/second read as print_target reads it, with every round's ratio, for a figure that
    has no target (a control, a second method)."""
    ratio, rounds = _rounds_reading(samples, first, second)
    print(f"    {first}/{second}: {ratio:.3f} (median of the rounds: {rounds})")
    sys.stdout.flush()


def _rounds_reading(samples, first, second):
    """(the median of the rounds' first/second, every round's ratio as text)."""
    ratios = round_ratios(samples, first, second)
    return median(ratios), ", ".join(f"{each:.3f}" for each in ratios)


def print_ratios(title, figures):
    """Print each figure (requests per second) and the ratio of every pair, first over later."""
    names = list(figures)
    print(f"\n{title}")
    for name in names:
        print(f"  {name:<12} {figures[name]:>10.1f} /s")
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            ratio = figures[first] / figures[second] if figures[second] else float("nan")
            print(f"  {first}/{second:<{22 - len(first)}} {ratio:>6.3f}x")
    sys.stdout.flush()
