"""What metrics and JSON logging cost: POST /api/v1/sessions and GET /api/v1/sessions/{id}, our app
with everything on against our app with both off, side by side in the same run.

  on   METRICS_ENABLED=true, multiprocess metrics (PROMETHEUS_MULTIPROC_DIR, the gunicorn config of
       production), LOG_FORMAT=json at LOG_LEVEL=INFO: a JSON line per request, written to a file
  off  METRICS_ENABLED=false, LOG_FORMAT=text at LOG_LEVEL=WARNING: no request line, nothing measured
Each gets its own copy of the same seeded database; measured in turns (ABBA across at least 8 rounds),
and the ratio is the median of the rounds' own on/off ratios. Target: on >= 0.95x off, for both endpoints.

    python -m tests.bench.bench_observability [--only post|get]
"""

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

from tests.bench import harness
from tests.bench.bench_sessions import TEMPLATE_DB, Target, prepare_template

RUN_DB = "orch_bench_observability_run"
TARGET = 0.95
# The difference sought is a few per cent, under the run-to-run noise of one measurement: many short
# rounds, each comparing on and off side by side (BENCH_ROUNDS raises it).
ROUNDS = max(harness.rounds(), 8)


def measure(kind, token, workdir):
    on_env = harness.app_env(
        harness.fresh_database(f"{RUN_DB}_on", template=TEMPLATE_DB),
        METRICS_ENABLED="true",
        METRICS_TOKEN="bench-metrics-token-0123456789abcdef",
        PROMETHEUS_MULTIPROC_DIR=workdir / "metrics",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    off_env = harness.app_env(
        harness.fresh_database(f"{RUN_DB}_off", template=TEMPLATE_DB),
        METRICS_ENABLED="false",
        LOG_FORMAT="text",
        LOG_LEVEL="WARNING",
    )
    config = ("-c", "python:orchestrator.gunicorn_conf")
    with (
        open(workdir / f"{kind}-on.log", "w") as on_log,
        open(workdir / f"{kind}-off.log", "w") as off_log,
        harness.gunicorn(
            "orchestrator.wsgi:application",
            env=on_env,
            ready_path="/api/v1/health/live",
            extra_args=config,
            log_file=on_log,
        ) as on_url,
        harness.gunicorn(
            "orchestrator.wsgi:application", env=off_env, ready_path="/api/v1/health/live", log_file=off_log
        ) as off_url,
    ):
        headers = {"Authorization": f"Bearer {token}"}
        targets = {"on": Target(kind, on_url, headers), "off": Target(kind, off_url, headers)}
        for target in targets.values():
            target.warm_up()
        samples = harness.turns({"on": targets["on"].rps, "off": targets["off"].rps}, round_count=ROUNDS)
    loggers = collections.Counter(
        json.loads(line).get("logger", "?") if line.startswith("{") else "(not JSON)"
        for line in (workdir / f"{kind}-on.log").read_text().splitlines()
    )
    return samples, loggers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["post", "get"])
    args = parser.parse_args(argv)
    print(
        f"Observability overhead: {harness.connections()} connections, {harness.duration():g} s per measurement, "
        f"gunicorn {harness.workers()} sync workers, median of {ROUNDS} rounds; {harness.machine()}"
    )
    token = prepare_template()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-observability-") as workdir:
            for kind in ["post", "get"] if args.only is None else [args.only]:
                samples, loggers = measure(kind, token, Path(workdir))
                path = "/api/v1/sessions" + ("/{id}" if kind == "get" else "")
                figures = {name: harness.median(rates) for name, rates in samples.items()}
                harness.print_ratios(f"{kind.upper()} {path}: metrics + JSON logs on vs both off", figures)
                print(f"  log lines written with everything on, by logger: {dict(loggers.most_common())}")
                harness.print_target(samples, "on", "off", TARGET)
        print(f"\n{harness.machine()}")
    finally:
        for suffix in ("on", "off"):
            harness.drop_database(f"{RUN_DB}_{suffix}")
        harness.drop_database(TEMPLATE_DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
