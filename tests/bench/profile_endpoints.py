"""CPU time per request of the benchmarked endpoints, called in-process (no server, no network).

A magnifying glass for bench_sessions (post: POST /sessions, get: GET /sessions/{id}) and
bench_claim (claim: POST /tasks/claim-next) and bench_route (route: POST /tasks/route): it calls the WSGI app directly, prints the SQL one
request sends and the CPU time per request, so a change's effect shows without the noise of
a loaded machine. Not run by `make bench` (its name does not start with bench_).

    python -m tests.bench.profile_endpoints ours|naive post|get|claim|route [--requests N] [--key|--replay] \\
        [--set NAME=VALUE ...]   (e.g. --set METRICS_ENABLED=true --set LOG_FORMAT=json --set LOG_LEVEL=INFO)
    py-spy record --gil --format raw -o /tmp/ours-post.txt -- \\
        .venv/bin/python -m tests.bench.profile_endpoints ours post --requests 3000

It creates, migrates and seeds its own database (orch_bench_profile) on the DATABASE_URL server.
"""

import argparse
import gc
import io
import os
import sys
import time
import uuid
import warnings

from tests.bench import bench_claim, bench_route, bench_sessions, harness
from tests.bench.bench_sessions import POST_BODY, SEEDED_PATHS

DATABASE = "orch_bench_profile"
WARM_UP_REQUESTS = 50
# CPU time per request is also reported per batch: the best batch is the steadiest figure on a busy machine.
BATCHES = 10


def environ(kind, index, token, key=None):
    body = {"post": POST_BODY, "route": bench_route.BODY}.get(kind, b"")
    if kind == "claim":
        path, query = bench_claim.CLAIM_PATH.split("?")
    elif kind == "route":
        path, query = bench_route.ROUTE_PATH, ""
    else:
        path, query = "/api/v1/sessions" if kind == "post" else SEEDED_PATHS[index % len(SEEDED_PATHS)], ""
    env = {
        "REQUEST_METHOD": "GET" if kind == "get" else "POST",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        env.update(CONTENT_TYPE="application/json", CONTENT_LENGTH=str(len(body)))
    if token:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if key:
        env["HTTP_IDEMPOTENCY_KEY"] = key
    return env


def backend_cpu_seconds(pid):
    """User + system CPU time of the PostgreSQL backend `pid` (same machine), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime, fields 14 and 15 of proc(5), counted after the command name's ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(app, kind, *, key=False, replay=False, **app_settings):
    """Create, migrate and seed this tool's database, load `app` ("ours" or "naive") in this process
    with `app_settings` as its environment, and return (call, statuses): call(index) sends the
    index-th request of `kind` straight to the WSGI app; statuses collects the answers' status lines."""
    url = harness.fresh_database(DATABASE)
    harness.migrate(url)
    if kind == "claim":
        bench_claim.reseed(url)
    else:
        harness.sql(url, bench_sessions.SEED_SQL)
    role = bench_claim.ROLE if kind == "claim" else "finance"
    token = harness.issue_token(url, role=role) if app == "ours" else None
    os.environ.update(harness.app_env(url, **app_settings))
    warnings.filterwarnings("ignore", "No directory at", UserWarning)

    if app == "ours":
        from orchestrator.wsgi import application
    else:
        from tests.bench.naive_app import application

    statuses = set()
    run = uuid.uuid4().hex

    def start_response(status, headers, exc_info=None):
        replayed = any(name.lower() == "idempotent-replayed" for name, _ in headers)
        statuses.add(f"{status} (replayed)" if replayed else status)

    def call(index):
        # A replay repeats one of the warm-up's keys, whose answers are stored by then.
        key_index = index % WARM_UP_REQUESTS if replay else index
        idempotency_key = f"profile-{run}-{key_index}" if (key or replay) and kind != "get" else None
        response = application(environ(kind, index, token, idempotency_key), start_response)
        b"".join(response)
        response.close()

    return call, statuses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", choices=["ours", "naive"])
    parser.add_argument("kind", choices=["post", "get", "claim", "route"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--key", action="store_true", help="send a fresh Idempotency-Key with every POST")
    parser.add_argument(
        "--replay", action="store_true", help="repeat the warm-up's keys, so every measured POST is a replay"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="an app setting's environment variable"
    )
    args = parser.parse_args(argv)

    call, statuses = in_process(
        args.app, args.kind, key=args.key, replay=args.replay, **dict(setting.split("=", 1) for setting in args.set)
    )
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for index in range(WARM_UP_REQUESTS):
        call(index)
    with CaptureQueriesContext(connection) as queries:
        call(WARM_UP_REQUESTS)
    print(f"{args.app} {args.kind}: {len(queries.captured_queries)} statements per request")
    for query in queries.captured_queries:
        print(f"  {query['sql'][:150]}")

    statuses.clear()
    batches = []
    # The garbage collector's passes, counted and timed: a cost the sampling profilers spread over
    # whatever line allocated last.
    collections = {0: 0, 1: 0, 2: 0}
    collecting = {0: 0.0, 1: 0.0, 2: 0.0}
    started = []

    def count_collection(phase, info):
        if phase == "start":
            started.append(time.process_time())
        else:
            collections[info["generation"]] += 1
            collecting[info["generation"]] += time.process_time() - started.pop()

    gc.callbacks.append(count_collection)
    index = WARM_UP_REQUESTS + 1
    # Persistent connections (DATABASE_CONN_MAX_AGE): every request talks to this one backend.
    backend_pid = connection.connection.info.backend_pid
    backend = backend_cpu_seconds(backend_pid)
    cpu, wall, system = time.process_time(), time.perf_counter(), os.times().system
    for _ in range(BATCHES):
        batch_cpu = time.process_time()
        for _ in range(args.requests // BATCHES):
            call(index)
            index += 1
        batches.append((time.process_time() - batch_cpu) / (args.requests // BATCHES))
    cpu, wall, system = time.process_time() - cpu, time.perf_counter() - wall, os.times().system - system
    gc.callbacks.remove(count_collection)
    same_backend = connection.connection is not None and connection.connection.info.backend_pid == backend_pid
    backend = backend_cpu_seconds(backend_pid) - backend if same_backend else None
    connection.close()
    harness.drop_database(DATABASE)
    print(
        f"{args.app} {args.kind}: {1e6 * cpu / args.requests:.0f} us CPU (of which system {1e6 * system / args.requests:.0f}) "
        f"and {1e6 * wall / args.requests:.0f} us wall per request over {args.requests} requests, answers {sorted(statuses)}; {harness.machine()}"
    )
    if backend is not None:
        print(f"  database backend: {1e6 * backend / args.requests:.0f} us CPU per request (its user + system time)")
    print(
        f"  per batch of {args.requests // BATCHES}: best {1e6 * min(batches):.0f} us CPU, median {1e6 * harness.median(batches):.0f} us"
    )
    print(
        "  garbage collector, generations 0 / 1 / 2: "
        + " / ".join(str(collections[generation]) for generation in collecting)
        + " passes, "
        + " / ".join(f"{1e6 * spent / args.requests:.1f}" for spent in collecting.values())
        + f" us CPU per request; {gc.get_freeze_count()} objects frozen"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
