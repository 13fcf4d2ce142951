"""Session-create throughput with 3 webhook subscriptions and the dispatcher running, versus without.

One gunicorn server answers POST /api/v1/sessions under load (each request writes a session and
its session.created audit event). Three subscriptions take "session.*", so every event the load
writes is owed to three receivers (loopback HTTP servers in this process). The load is measured
in turns (ABBA across rounds): once with no dispatcher, once while a dispatcher process runs
deliver_webhooks back to back (a pass, then DISPATCH_PAUSE_SECONDS). Webhooks read the audit log
after commit and add nothing to the request path, so the target is with/without >= 0.9.
At the end the dispatcher catches up and every receiver is checked to hold every event once.

    python -m tests.bench.bench_webhooks

It creates (and drops afterwards) its own database, orch_bench_webhooks, on the PostgreSQL server
named by DATABASE_URL. Knobs: BENCH_DURATION, BENCH_CONNECTIONS, BENCH_WORKERS, BENCH_ROUNDS.
"""

import os
import signal
import sys
import threading

from tests.bench import harness
from tests.webhooks.receiver import Receiver

DATABASE = "orch_bench_webhooks"
WARM_UP_SECONDS = 2
TARGET = 0.9
SUBSCRIPTIONS = 3
DISPATCH_PAUSE_SECONDS = 0.2
POST_BODY = b'{"role": "finance", "metadata": {"source": "bench"}}'


def run_dispatcher():
    """The background dispatcher: deliver until SIGTERM, then print how many events it delivered."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    django.setup()
    from webhooks.services import deliver_webhooks

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    deliver_webhooks()  # the previous measurement's backlog, before the load starts
    print("ready", flush=True)
    delivered = 0
    while not stopping.is_set():
        delivered += deliver_webhooks()
        stopping.wait(DISPATCH_PAUSE_SECONDS)
    print(delivered, flush=True)


class BackgroundDispatcher(harness.BackgroundJob):
    def __init__(self, env):
        super().__init__("tests.bench.bench_webhooks", "--dispatcher", env=env, timeout=300)

    @property
    def delivered(self):
        return int(self.output or 0)


def main():
    print(
        f"Webhooks: {SUBSCRIPTIONS} subscriptions, {harness.connections()} connections, "
        f"{harness.duration():g} s per measurement, gunicorn {harness.workers()} sync workers, "
        f"median of {harness.rounds()} round(s); {harness.machine()}"
    )
    url = harness.fresh_database(DATABASE)
    receivers = [Receiver().start() for _ in range(SUBSCRIPTIONS)]
    try:
        harness.migrate(url)
        token = harness.issue_token(url, role="finance")
        env = harness.app_env(url, WEBHOOK_ALLOW_PRIVATE_NETWORKS="true", WEBHOOK_BATCH_SIZE=1000)
        for receiver in receivers:
            harness.manage(url, "add_webhook", receiver.url, "--events", "session.*", env=env)
        headers = {"Authorization": f"Bearer {token}"}
        delivered_during_load = 0
        with harness.gunicorn("orchestrator.wsgi:application", env=env, ready_path="/api/v1/health") as base_url:
            post = base_url + "/api/v1/sessions"

            def rps(arm):
                result = harness.http_load(post, method="POST", body=POST_BODY, headers=headers)
                if result.errors:
                    raise RuntimeError(f"{arm}: {result.errors} failed requests of {result.requests}")
                return result.rps

            def with_dispatcher():
                nonlocal delivered_during_load
                with BackgroundDispatcher(env) as dispatcher:
                    measured = rps("with")
                delivered_during_load += dispatcher.delivered
                return measured

            harness.check_answer(
                base_url, "POST", "/api/v1/sessions", body=POST_BODY, headers=headers, expected_status=201
            )
            harness.http_load(post, method="POST", body=POST_BODY, headers=headers, duration=WARM_UP_SECONDS)
            figures = harness.in_turns({"without": lambda: rps("without"), "with": with_dispatcher})
        harness.print_ratios(
            "POST /api/v1/sessions with 3 webhook subscriptions",
            {"with": figures["with"], "without": figures["without"]},
        )
        ratio = figures["with"] / figures["without"]
        print(f"  target with/without >= {TARGET}: {'met' if ratio >= TARGET else 'MISSED'} ({ratio:.3f})")
        print(f"  delivered by the dispatcher during the load: {delivered_during_load} events")
        while harness.manage(url, "deliver_webhooks", env=env).strip() != "Delivered 0 events.":
            pass
        expected = [
            row[0]
            for row in harness.sql(
                url, "SELECT id FROM audit_auditevent WHERE event_type = 'session.created' ORDER BY txid, id"
            )
        ]
        for n, receiver in enumerate(receivers, 1):
            print(
                f"  receiver {n}: {len(receiver.accepted)} of {len(expected)} session.created events, "
                f"{len(receiver.duplicates)} duplicates, in stream order: {receiver.accepted_ids() == expected}"
            )
    finally:
        for receiver in receivers:
            receiver.stop()
        harness.drop_database(DATABASE)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--dispatcher"]:
        run_dispatcher()
    else:
        sys.exit(main())
