"""What metrics and JSON logging cost: POST /api/v1/sessions and GET /api/v1/sessions/{id}, our app
with everything on against our app with both off, in the same run.

  on     METRICS_ENABLED=true, multiprocess metrics (PROMETHEUS_MULTIPROC_DIR, the gunicorn config of
         production), LOG_FORMAT=json at LOG_LEVEL=INFO: a JSON line per request, written to a file
  off    METRICS_ENABLED=false, LOG_FORMAT=text at LOG_LEVEL=WARNING: no request line, nothing measured
         (the same production gunicorn config and multiprocess directory as on: only the two parts differ)
  off-2  a second server exactly like off: the control. off-2/off would be 1.000 for a method without
         noise or bias; how far its rounds stray from 1 is the resolution of the method.
Each gets its own copy of the same seeded database. A server started before the others runs some
4 % slower than the same server started after them: an idle stand-in of the app is started first
(harness.stand_in), and in case that is not the whole story the three are started three times, each
time in another order, each start measuring a third of the rounds (at least 9 in all). Two methods,
each ratio the median of the rounds' own ratios:
  side by side  the three loaded at the same time, each from its own wrk (harness.side_by_side): a
                drift of the machine's speed hits all three alike. The target reads this one.
  in turns      one after the other, in ABBA order (harness.turns), as the other benchmarks measure;
                a drift between two measurements of a round lands in that round's ratio.
Target: on >= 0.95x off, for both endpoints (docs/benchmarks.md says why side by side is the reading).

    python -m tests.bench.bench_observability [--only post|get]
"""

import argparse
import collections
import contextlib
import json
import sys
import tempfile
from pathlib import Path

from tests.bench import harness
from tests.bench.bench_sessions import TEMPLATE_DB, Target, prepare_template

RUN_DB = "orch_bench_observability_run"
DATABASES = {"on": "on", "off": "off", "off-2": "control"}
TARGET = 0.95
# The difference sought is a few per cent, under the run-to-run noise of one measurement: many short
# rounds, each comparing on and off side by side (BENCH_ROUNDS raises it).
ROUNDS = max(harness.rounds(), 8)


def measure(kind, token, workdir):
    """The rates of on, off and off-2 and their servers' CPU per request, round by round: side by
    side, then in turns. The servers are started after a stand-in (harness.stand_in), three times,
    each time in another order, and measured for a third of the rounds each time, so each
    configuration takes each place once."""
    off = dict(METRICS_ENABLED="false", LOG_FORMAT="text", LOG_LEVEL="WARNING")
    settings = {
        "on": dict(
            METRICS_ENABLED="true",
            METRICS_TOKEN="bench-metrics-token-0123456789abcdef",
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
        ),
        "off": off,
        "off-2": off,
    }
    envs = {
        name: harness.app_env(
            harness.fresh_database(f"{RUN_DB}_{DATABASES[name]}", template=TEMPLATE_DB),
            PROMETHEUS_MULTIPROC_DIR=workdir / f"{kind}-metrics-{name}",
            **values,
        )
        for name, values in settings.items()
    }
    names = list(settings)
    rounds_per_start = -(-ROUNDS // len(names))
    results = {
        method: ({name: [] for name in names}, {name: [] for name in names}) for method in ("side by side", "in turns")
    }
    for start in range(len(names)):
        order = names[start:] + names[:start]
        with contextlib.ExitStack() as servers:
            stand_in_env = {**envs["off"], "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"{kind}-metrics-stand-in")}
            servers.enter_context(harness.stand_in(stand_in_env))
            targets = {}
            for name in order:
                log_file = servers.enter_context(open(workdir / f"{kind}-{name}.log", "a"))  # noqa: SIM115
                url = servers.enter_context(
                    harness.gunicorn(
                        "orchestrator.wsgi:application",
                        env=envs[name],
                        ready_path="/api/v1/health/live",
                        extra_args=("-c", "python:orchestrator.gunicorn_conf"),
                        log_file=log_file,
                    )
                )
                targets[name] = Target(kind, url, {"Authorization": f"Bearer {token}"})
            for target in targets.values():
                target.warm_up()
            for method, run in (("side by side", harness.side_by_side), ("in turns", harness.turns)):
                samples, costs = results[method]
                measures = {name: _costed(targets[name], costs[name]) for name in names}
                for name, rates in run(measures, round_count=rounds_per_start).items():
                    samples[name].extend(rates)
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
        for suffix in DATABASES.values():
            harness.drop_database(f"{RUN_DB}_{suffix}")
        harness.drop_database(TEMPLATE_DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
