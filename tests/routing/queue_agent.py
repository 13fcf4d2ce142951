"""An agent process for the work-queue tests: it speaks HTTP through agent_tools only (no Django).

    python -m tests.routing.queue_agent hold LEASE        claim the next task, print its lease, hang
    python -m tests.routing.queue_agent long LEASE WORK   work WORK seconds on one task with next_task
    python -m tests.routing.queue_agent work NAME         claim and work until killed (the chaos run)

ORCHESTRATOR_URL and ORCHESTRATOR_TOKEN come from the environment. Every answer of the API that is
a 5xx is printed as `5XX <status> <method> <url>`, so the test can see any, even from heartbeats.
"""

import json
import random
import sys
import time

import requests

from agent_tools import LeaseLost, OrchestratorClient

_send = requests.Session.send


def _send_and_report_5xx(self, request, **kwargs):
    response = _send(self, request, **kwargs)
    if response.status_code >= 500:
        print(f"5XX {response.status_code} {request.method} {request.url}", flush=True)
    return response


requests.Session.send = _send_and_report_5xx


def hold(lease_seconds):
    task = OrchestratorClient.from_env().claim_next(lease_seconds=lease_seconds)
    print(json.dumps({"task_id": task.task_id, "lease_token": task.lease_token, "attempt": task.attempt}), flush=True)
    while True:
        time.sleep(60)


def long(lease_seconds, work_seconds):
    with OrchestratorClient.from_env().next_task(lease_seconds=lease_seconds) as work:
        print(f"claimed {work.task_id}", flush=True)
        time.sleep(work_seconds)
        work.result = {"worked_seconds": work_seconds, "attempt": work.task.attempt}
    print("done", flush=True)


def chaos_worker(name):
    client = OrchestratorClient.from_env()
    rng = random.Random()
    while True:
        try:
            with client.next_task(lease_seconds=rng.choice([1, 2])) as work:
                if work is None:
                    # Nothing due (the rest is under lease or backing off): poll gently.
                    time.sleep(0.25)
                    continue
                print(f"CLAIMED {work.task_id} {work.task.attempt}", flush=True)
                # Mostly short work; now and then longer than the lease, which only heartbeats survive.
                time.sleep(rng.uniform(1.2, 2.5) if rng.random() < 0.05 else rng.expovariate(20))
                if work.payload.get("poison"):
                    raise RuntimeError("poison task")
                work.result = {"by": name, "attempt": work.task.attempt}
            print(f"COMPLETED {work.task_id} {work.task.attempt}", flush=True)
        except LeaseLost as exc:
            print(f"LOST {exc}", flush=True)
        except RuntimeError:
            pass


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "hold":
        hold(int(args[0]))
    elif mode == "long":
        long(int(args[0]), float(args[1]))
    else:
        chaos_worker(args[0])
