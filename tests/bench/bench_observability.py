"""What metrics and JSON logging cost: POST /api/v1/sessions and GET /api/v1/sessions/{id}, our app
with everything on against our app with both off, in the same run.

  on     METRICS_ENABLED=true, multiprocess metrics (PROMETHEUS_MULTIPROC_DIR, the gunicorn config of
         production), LOG_FORMAT=json at LOG_LEVEL=INFO: a JSON line per request, written to a file
  off    METRICS_ENABLED=false, LOG_FORMAT=text at LOG_LEVEL=WARNING: no request line, nothing measured
         (the same production gunicorn config and multiprocess directory as on: only the two parts differ)
  off-2  a second server exactly like off: the control. off-2/off would be 1.000 for a method without
         noise or bias; how far its rounds stray from 1 is the resolution of the method.
Each gets its own copy of the same seeded database. Two methods, each over at least 8 rounds, each
ratio the median of the rounds' own ratios:
  side by side  the three loaded at the same time, each from its own wrk (harness.side_by_side): a
                drift of the machine's speed hits all three alike. The target reads this one.
  in turns      one after the other, in ABBA order (harness.turns), as the other benchmarks measure;
                a drift between two measurements of a round lands in that round's ratio.
Target: on >= 0.95x off, for both endpoints (docs/benchmarks.md says why side by side is the reading).

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
    """The rates of on, off and off-2, round by round: side by side, then in turns."""
    on_env = harness.app_env(
        harness.fresh_database(f"{RUN_DB}_on", template=TEMPLATE_DB),
        METRICS_ENABLED="true",
        METRICS_TOKEN="bench-metrics-token-0123456789abcdef",
        PROMETHEUS_MULTIPROC_DIR=workdir / "metrics",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    off = dict(METRICS_ENABLED="false", LOG_FORMAT="text", LOG_LEVEL="WARNING")
    off_env = harness.app_env(
        harness.fresh_database(f"{RUN_DB}_off", template=TEMPLATE_DB),
        PROMETHEUS_MULTIPROC_DIR=workdir / "metrics-off",
        **off,
    )
    control_env = harness.app_env(
        harness.fresh_database(f"{RUN_DB}_control", template=TEMPLATE_DB),
        PROMETHEUS_MULTIPROC_DIR=workdir / "metrics-off-2",
        **off,
    )
    config = ("-c", "python:orchestrator.gunicorn_conf")
    serving = "/api/v1/health/live"
    with (
        open(workdir / f"{kind}-on.log", "w") as on_log,
        open(workdir / f"{kind}-off.log", "w") as off_log,
        open(workdir / f"{kind}-off-2.log", "w") as control_log,
        harness.gunicorn(
            "orchestrator.wsgi:application", env=on_env, ready_path=serving, extra_args=config, log_file=on_log
        ) as on_url,
        harness.gunicorn(
            "orchestrator.wsgi:application", env=off_env, ready_path=serving, extra_args=config, log_file=off_log
        ) as off_url,
        harness.gunicorn(
            "orchestrator.wsgi:application",
            env=control_env,
            ready_path=serving,
            extra_args=config,
            log_file=control_log,
        ) as control_url,
    ):
        headers = {"Authorization": f"Bearer {token}"}
        targets = {
            "on": Target(kind, on_url, headers),
            "off": Target(kind, off_url, headers),
            "off-2": Target(kind, control_url, headers),
        }
        for target in targets.values():
            target.warm_up()
        results = {}
        for method, run in (("side by side", harness.side_by_side), ("in turns", harness.turns)):
            costs = {name: [] for name in targets}
            measures = {name: _costed(target, costs[name]) for name, target in targets.items()}
            results[method] = (run(measures, round_count=ROUNDS), costs)
    loggers = collections.Counter(
        json.loads(line).get("logger", "?") if line.startswith("{") else "(not JSON)"
        for line in (workdir / f"{kind}-on.log").read_text().splitlines()
    )
    return results, loggers


def _costed(target, costs):
    """A measure of `target`'s rate that also appends to `costs` the server CPU seconds per request."""

    def measure():
        before = harness.server_cpu_seconds(target.base_url)
        result = target.run()
        costs.append((harness.server_cpu_seconds(target.base_url) - before) / result.requests)
        return result.rps

    return measure


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
                results, loggers = measure(kind, token, Path(workdir))
                path = "/api/v1/sessions" + ("/{id}" if kind == "get" else "")
                for method, (samples, costs) in results.items():
                    figures = {name: harness.median(rates) for name, rates in samples.items()}
                    harness.print_ratios(
                        f"{kind.upper()} {path}, {method}: metrics + JSON logs on vs both off", figures
                    )
                    print("  requests per second, on/off and the control off-2/off (1.000 for an exact method):")
                    harness.print_ratios_of_rounds(samples, "on", "off")
                    harness.print_ratios_of_rounds(samples, "off-2", "off")
                    cpu = ", ".join(f"{name} {1e6 * harness.median(each):.0f}" for name, each in costs.items())
                    print(f"  server CPU per request (us, median of the rounds): {cpu}")
                    # Capacity: requests a core serves, on over off, which is off's cost over on's.
                    capacities = {name: [1 / each for each in values] for name, values in costs.items()}
                    print("  capacity (requests per CPU second), on/off and off-2/off:")
                    harness.print_ratios_of_rounds(capacities, "on", "off")
                    harness.print_ratios_of_rounds(capacities, "off-2", "off")
                    if method == "side by side":
                        harness.print_target(samples, "on", "off", TARGET)
                print(f"  log lines written with everything on, by logger: {dict(loggers.most_common())}")
        print(f"\n{harness.machine()}")
    finally:
        for suffix in ("on", "off", "control"):
            harness.drop_database(f"{RUN_DB}_{suffix}")
        harness.drop_database(TEMPLATE_DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
