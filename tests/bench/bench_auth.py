"""Authenticated GET throughput: an OIDC JWT versus a local API token, in the same run.

One gunicorn server of ours, configured for both credentials (OIDC_ISSUER pointing at a real
provider process, tests/auth/oidc_provider.py), answers GET /api/v1/sessions/{id} under load,
once with `Authorization: Bearer <local token>` and once with `Bearer <JWT from the provider>`,
in turns (ABBA across rounds). The JWT is verified locally against the cached JWKS, so the
provider is asked for its keys once per worker process and never per request; the run prints
how many JWKS fetches the provider saw during the load to show it.
Target: jwt >= 0.8x token.

    python -m tests.bench.bench_auth [--worker-class sync|gthread --threads N]
"""

import argparse
import sys
import tempfile

from tests.auth.provider import Provider, new_rsa_key
from tests.bench import harness
from tests.bench.bench_sessions import SEED_SQL, SEEDED_PATHS

DATABASE = "orch_bench_auth"
WARM_UP_SECONDS = 2
TARGET = 0.8


def measure(base_url, credentials):
    for headers in credentials.values():
        harness.check_answer(base_url, "GET", SEEDED_PATHS[0], headers=headers, expected_status=200)
        harness.http_load(base_url + SEEDED_PATHS[0], paths=SEEDED_PATHS, headers=headers, duration=WARM_UP_SECONDS)

    def rps(name):
        result = harness.http_load(base_url + SEEDED_PATHS[0], paths=SEEDED_PATHS, headers=credentials[name])
        if result.errors:
            raise RuntimeError(f"{name}: {result.errors} failed requests of {result.requests}")
        return result.rps

    return harness.in_turns({name: lambda name=name: rps(name) for name in credentials})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    print(
        f"Auth: {harness.connections()} connections, {harness.duration():g} s per measurement, "
        f"gunicorn {harness.workers()} {args.worker_class} workers x {args.threads} threads, "
        f"median of {harness.rounds()} round(s); {harness.machine()}"
    )
    url = harness.fresh_database(DATABASE)
    try:
        harness.migrate(url)
        harness.sql(url, SEED_SQL)
        local_token = harness.issue_token(url, role="finance")
        with tempfile.TemporaryDirectory() as workdir:
            provider = Provider(workdir)
            provider.start(new_rsa_key())
            try:
                jwt_token = provider.id_token("bench-agent", {"role": "finance"})
                env = harness.app_env(url, OIDC_ISSUER=provider.issuer, OIDC_AUDIENCE="orchestrator")
                with harness.gunicorn(
                    "orchestrator.wsgi:application",
                    env=env,
                    worker_class=args.worker_class,
                    threads=args.threads,
                    ready_path="/api/v1/health",
                ) as base_url:
                    fetches_before = provider.jwks_fetches_logged()
                    figures = measure(
                        base_url,
                        {
                            "jwt": {"Authorization": f"Bearer {jwt_token}"},
                            "token": {"Authorization": f"Bearer {local_token}"},
                        },
                    )
                    fetches = provider.jwks_fetches_logged() - fetches_before
            finally:
                provider.stop()
    finally:
        harness.drop_database(DATABASE)

    harness.print_ratios("GET /api/v1/sessions/{id}: JWT versus local token", figures)
    print(f"  JWKS fetches seen by the provider during the run: {fetches} (at most one per worker process)")
    print(f"  target jwt >= {TARGET}x token: {'met' if figures['jwt'] >= TARGET * figures['token'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
