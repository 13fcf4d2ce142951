"""Session-create throughput with audit sealing running in the background versus without it.

One gunicorn server answers POST /api/v1/sessions under load (each request writes a session
and its audit event). The same load is measured in turns (ABBA across rounds): once alone, and
once while a separate sealer process runs seal_audit every SEAL_INTERVAL_SECONDS (1 s: sixty
times as often as the beat schedule, so every measurement overlaps many sealing runs), and once
with that sealer also signing a checkpoint after every run (an Ed25519 key from audit_keygen,
one checkpoint file per run; issue 16). Sealing and signing happen off the write path, so the
targets are with/without >= 0.9 and signed/without >= 0.9. At the end every event is sealed
and signed, and the chain and the checkpoints are verified.

    python -m tests.bench.bench_sealing

It creates (and drops afterwards) its own database, orch_bench_sealing, on the PostgreSQL server
named by DATABASE_URL. Knobs: BENCH_DURATION, BENCH_CONNECTIONS, BENCH_WORKERS, BENCH_ROUNDS
(see tests/bench/harness.py).
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tests.bench import harness

DATABASE = "orch_bench_sealing"
WARM_UP_SECONDS = 2
TARGET = 0.9
SEAL_INTERVAL_SECONDS = 1.0
POST_BODY = b'{"role": "finance", "metadata": {"source": "bench"}}'


def run_sealer():
    """The background sealer: seal until SIGTERM, then print how many events it sealed."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    django.setup()
    from audit.services import seal_audit

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    seal_audit()  # the backlog of the previous measurement, before the load starts
    print("ready", flush=True)
    sealed = runs = 0
    while not stopping.is_set():
        sealed += seal_audit()
        runs += 1
        stopping.wait(SEAL_INTERVAL_SECONDS)
    print(f"{sealed} {runs}", flush=True)


class BackgroundSealer(harness.BackgroundJob):
    def __init__(self, env):
        super().__init__("tests.bench.bench_sealing", "--sealer", env=env, timeout=120)

    @property
    def sealed(self):
        # The sealer prints "<events sealed> <runs>"; the events are what the benchmark reports.
        return int(self.output.split()[0]) if self.output else 0


def signing_env(env, directory):
    """`env` plus a fresh signing key (written by audit_keygen) and a checkpoint directory."""
    key_file = Path(directory) / "signing.pem"
    subprocess.run(
        [sys.executable, "manage.py", "audit_keygen", str(key_file)],
        cwd=harness.BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
    )
    return {
        **env,
        "AUDIT_SIGNING_KEY_FILE": str(key_file),
        "AUDIT_CHECKPOINT_DIR": str(Path(directory) / "checkpoints"),
    }


def main():
    print(
        f"Audit sealing: {harness.connections()} connections, {harness.duration():g} s per measurement, "
        f"gunicorn {harness.workers()} sync workers, median of {harness.rounds()} round(s); {harness.machine()}"
    )
    url = harness.fresh_database(DATABASE)
    key_directory = tempfile.TemporaryDirectory(prefix="bench-audit-keys-")
    try:
        harness.migrate(url)
        token = harness.issue_token(url, role="finance")
        env = harness.app_env(url)
        signed_env = signing_env(env, key_directory.name)
        headers = {"Authorization": f"Bearer {token}"}
        sealed_during_load = signed_during_load = 0
        with harness.gunicorn("orchestrator.wsgi:application", env=env, ready_path="/api/v1/health") as base_url:
            post = base_url + "/api/v1/sessions"

            def rps(arm):
                result = harness.http_load(post, method="POST", body=POST_BODY, headers=headers)
                if result.errors:
                    raise RuntimeError(f"{arm}: {result.errors} failed requests of {result.requests}")
                return result.rps

            def with_sealer():
                nonlocal sealed_during_load
                with BackgroundSealer(env) as sealer:
                    measured = rps("with")
                sealed_during_load += sealer.sealed
                return measured

            def with_signing_sealer():
                nonlocal signed_during_load
                with BackgroundSealer(signed_env) as sealer:
                    measured = rps("signed")
                signed_during_load += sealer.sealed
                return measured

            harness.check_answer(
                base_url, "POST", "/api/v1/sessions", body=POST_BODY, headers=headers, expected_status=201
            )
            harness.http_load(post, method="POST", body=POST_BODY, headers=headers, duration=WARM_UP_SECONDS)
            figures = harness.in_turns(
                {"without": lambda: rps("without"), "with": with_sealer, "signed": with_signing_sealer}
            )
        harness.print_ratios(
            "POST /api/v1/sessions with background sealing (with) and sealing + signing (signed)",
            {
                "signed": figures["signed"],
                "with": figures["with"],
                "without": figures["without"],
            },
        )
        for arm in ("with", "signed"):
            ratio = figures[arm] / figures["without"]
            print(f"  target {arm}/without >= {TARGET}: {'met' if ratio >= TARGET else 'MISSED'} ({ratio:.3f})")
        print(
            f"  sealed by the background sealer during the load: {sealed_during_load} events unsigned, "
            f"{signed_during_load} events signed (every {SEAL_INTERVAL_SECONDS:g} s)"
        )
        harness.manage(url, "seal_audit", env=signed_env)
        checkpoint_files = len(list((Path(key_directory.name) / "checkpoints").glob("checkpoint-*.json")))
        print(f"  checkpoint files written: {checkpoint_files}")
        print("  " + harness.manage(url, "verify_audit", env=signed_env).strip().replace("\n", "\n  "))
    finally:
        harness.drop_database(DATABASE)
        key_directory.cleanup()
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--sealer"]:
        run_sealer()
    else:
        sys.exit(main())
