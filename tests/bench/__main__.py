"""Run every benchmark module tests/bench/bench_*.py, each in its own process, one after another.

    python -m tests.bench                 all of them
    python -m tests.bench sessions auth   only bench_sessions and bench_auth

Exits non-zero when a benchmark crashed; what they print is for people to read (see docs/benchmarks.md).
"""

import subprocess
import sys
from pathlib import Path

from tests.bench.harness import BASE_DIR


def main(argv):
    available = sorted(path.stem for path in Path(__file__).parent.glob("bench_*.py"))
    wanted = [f"bench_{name.removeprefix('bench_')}" for name in argv]
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    failed = []
    for name in wanted or available:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, "-m", f"tests.bench.{name}"], cwd=BASE_DIR).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
