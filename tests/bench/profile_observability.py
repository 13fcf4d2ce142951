"""What metrics and the JSON request line cost per request, in-process: one process serves POST or
GET /sessions straight through the WSGI app (no server, no network) and turns the two on and off
between batches, so a drift of the machine's speed hits every configuration alike.

  off      METRICS_ENABLED off and the request logger at WARNING: no instrument, no line
  metrics  the request's counter and histogram, multiprocess (PROMETHEUS_MULTIPROC_DIR)
  line     the JSON request line (LOG_FORMAT=json, INFO), written to a file
  on       both
Both are read per request (settings.METRICS_ENABLED, the logger's level), so turning them is what
turning them in the environment does to a request. Each round runs a batch of every configuration,
in an order that rotates, and ends by writing what its requests still owe the log and the metrics
(request_batches), so each batch pays for its own lines; the figures are CPU time per request, the median over the rounds, and the
median of the rounds' own ratios to off. A magnifying glass for bench_observability: not run by
`make bench` (its name does not start with bench_).

    python -m tests.bench.profile_observability post|get [--key] [--rounds N] [--batch N] [--log-format text]
"""

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import harness
from tests.bench.profile_endpoints import DATABASE, WARM_UP_REQUESTS, in_process

CONFIGURATIONS = {"off": (False, False), "metrics": (True, False), "line": (False, True), "on": (True, True)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["post", "get"])
    parser.add_argument("--key", action="store_true", help="send a fresh Idempotency-Key with every POST")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100, help="requests per configuration and round")
    parser.add_argument("--log-format", choices=["json", "text"], default="json", help="LOG_FORMAT of the line")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="profile-observability-"))
    log_path = workdir / "requests.log"
    # The app's log handler writes to this process's stderr: a file, as the benchmark's servers do.
    log_file = open(log_path, "w")  # noqa: SIM115  (open for the process's life)
    saved_stderr = os.dup(2)
    os.dup2(log_file.fileno(), 2)
    try:
        call, statuses = in_process(
            "ours",
            args.kind,
            key=args.key,
            METRICS_ENABLED="true",
            LOG_FORMAT=args.log_format,
            LOG_LEVEL="INFO",
            PROMETHEUS_MULTIPROC_DIR=workdir / "metrics",
        )
        from django.conf import settings

        from orchestrator.telemetry.request_batches import pending

        request_logger = logging.getLogger("orchestrator.request")

        def configure(name):
            metrics, line = CONFIGURATIONS[name]
            settings.METRICS_ENABLED = metrics
            request_logger.setLevel(logging.INFO if line else logging.WARNING)

        index = 0
        for name in CONFIGURATIONS:
            configure(name)
            for _ in range(WARM_UP_REQUESTS):
                call(index)
                index += 1
        pending.write()
        costs = {name: [] for name in CONFIGURATIONS}
        lines_before = _lines(log_path)
        names = list(CONFIGURATIONS)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                configure(name)
                started = time.process_time()
                for _ in range(args.batch):
                    call(index)
                    index += 1
                # What the batch still owes the log and the metrics is its own cost, not the next's.
                pending.write()
                costs[name].append((time.process_time() - started) / args.batch)
        lines = _lines(log_path) - lines_before
    finally:
        os.dup2(saved_stderr, 2)
        harness.drop_database(DATABASE)

    expected_lines = 2 * args.rounds * args.batch
    print(
        f"{args.kind.upper()} /sessions{' with a fresh key' if args.key else ''} in-process, {args.rounds} rounds of "
        f"{args.batch} requests per configuration; answers {sorted(statuses)}; request lines {lines} "
        f"(expected {expected_lines}); {harness.machine()}"
    )
    off = costs["off"]
    for name, values in costs.items():
        ratios = [value / base for value, base in zip(values, off, strict=True)]
        print(
            f"  {name:<8} {1e6 * harness.median(values):7.1f} us CPU per request, "
            f"{1e6 * harness.median([v - b for v, b in zip(values, off, strict=True)]):+6.1f} us on off "
            f"(median of the rounds' differences); cost/off {harness.median(ratios):.3f}, "
            f"so off/{name} {1 / harness.median(ratios):.3f}"
        )
    return 0 if lines == expected_lines else 1


def _lines(path):
    sys.stderr.flush()
    with open(path, "rb") as file:
        return sum(1 for line in file if b"orchestrator.request" in line)


if __name__ == "__main__":
    sys.exit(main())
