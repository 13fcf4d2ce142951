"""Routing under policy: POST /api/v1/tasks/route from a role with a 20-rule profile versus a role
whose profile has no rules, and a role with no profile at all (routing as before policy), in
the same run on one gunicorn server (in turns, ABBA across rounds). Every rule of the 20 is
evaluated on every route (none matches, so none short-circuits the rest); the compiled CEL
programs are cached per profile version, so a route pays one indexed query for the active
version plus the evaluations. Also prints the per-call cost of the pieces, measured in-process:
the kill-switch check every agent write pays, the active-profile lookup, and the 20 evaluations.
Target: rules20 >= 0.9x norules.

    python -m tests.bench.bench_policy
"""

import os
import sys
import tempfile
from pathlib import Path

import yaml

from tests.bench import harness

DATABASE = "orch_bench_policy"
WARM_UP_SECONDS = 2
TARGET = 0.9
ROUTE_BODY = b'{"type": "invoice.check", "to_role": "engineering", "payload": {"amount": 250, "currency": "EUR"}}'

# Twenty rules of the kinds the shipped profiles use, none matching an invoice.check of 250.
RULES = [
    {
        "id": f"rule-{n:02d}",
        "when": expression,
        "effect": effect,
        **({"approver_role": "manager"} if effect == "require_approval" else {}),
        "reason": f"Rule {n}.",
    }
    for n, (expression, effect) in enumerate(
        [
            (f'task.type == "payment.{n}" && double(task.payload.amount) > {1000 + n}.0', "require_approval")
            for n in range(8)
        ]
        + [(f'task.to_role == "finance" && task.type == "refund.{n}"', "deny") for n in range(6)]
        + [('task.type.startsWith("deploy") && task.payload.environment == "production"', "require_approval")]
        + [('principal.is_staff == false && task.type == "access.grant"', "deny")]
        + [('task.priority > 90 && task.type == "incident"', "require_approval")]
        + [('"secret" in task.payload && task.to_role != "manager"', "deny")]
        + [('task.type in ["wire", "crypto", "cash"]', "deny")]
        + [("size(task.payload) > 50", "deny")]
    )
]

PROFILES = {
    "support": {
        "role": "support",
        "description": "20 rules",
        "tools": [],
        "rules": RULES,
        "may_route_to": [{"role": "engineering", "types": ["*"]}],
    },
    "marketing": {
        "role": "marketing",
        "description": "no rules",
        "tools": [],
        "rules": [],
        "may_route_to": [{"role": "engineering", "types": ["*"]}],
    },
}
ROLES = {"rules20": "support", "norules": "marketing", "noprofile": "finance"}

MICRO = """
import time
from policy import services
from routing.models import Task
from orchestrator.identity.principal import Principal
task = Task(type="invoice.check", from_role="support", to_role="engineering", payload={"amount": 250, "currency": "EUR"})
principal = Principal(subject="bench", role="support")
def per_call(fn, n=3000):
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6
profile = services.active_profile("support")
variables = {"principal": {"role": "support", "subject": "bench", "is_staff": False},
             "task": {"type": task.type, "from_role": "support", "to_role": task.to_role, "payload": task.payload, "priority": 0},
             "now": services.timezone.now()}
print(f"  kill-switch check (is_role_paused, kept a second):    {per_call(lambda: services.is_role_paused('support')):.0f} us")
print(f"  active profile lookup (cached programs):               {per_call(lambda: services.active_profile('support')):.0f} us")
print(f"  20 rule evaluations:                                    {per_call(lambda: services._evaluate(profile, variables, context='route')):.0f} us")
print(f"  whole route decision (lookup + 20 rules):               {per_call(lambda: services.route_decision(principal=principal, from_role='support', task=task)):.0f} us")
"""


def measure(base_url, tokens):
    url = base_url + "/api/v1/tasks/route"
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    for name in tokens:
        harness.check_answer(
            base_url, "POST", "/api/v1/tasks/route", body=ROUTE_BODY, headers=headers[name], expected_status=202
        )
        harness.http_load(url, method="POST", body=ROUTE_BODY, headers=headers[name], duration=WARM_UP_SECONDS)

    def rps(name):
        result = harness.http_load(url, method="POST", body=ROUTE_BODY, headers=headers[name])
        if result.errors:
            raise RuntimeError(f"{name}: {result.errors} failed requests of {result.requests}")
        return result.rps

    return harness.in_turns({name: lambda name=name: rps(name) for name in tokens})


def main(argv=None):
    # The bench database starts without the shipped profiles: only the two above are loaded.
    os.environ["POLICY_DEFAULT_PROFILES_DIR"] = ""
    print(
        f"Policy: {harness.connections()} connections, {harness.duration():g} s per measurement, "
        f"gunicorn {harness.workers()} workers, median of {harness.rounds()} round(s); {harness.machine()}"
    )
    url = harness.fresh_database(DATABASE)
    try:
        harness.migrate(url)
        with tempfile.TemporaryDirectory() as directory:
            for role, document in PROFILES.items():
                Path(directory, f"{role}.yaml").write_text(yaml.safe_dump(document))
            harness.manage(url, "load_profiles", directory)
        tokens = {name: harness.issue_token(url, role=role) for name, role in ROLES.items()}
        env = harness.app_env(url)
        with harness.gunicorn("orchestrator.wsgi:application", env=env, ready_path="/api/v1/health") as base_url:
            figures = measure(base_url, tokens)
        micro = harness.manage(url, "shell", "-c", MICRO)
    finally:
        harness.drop_database(DATABASE)

    harness.print_ratios("POST /api/v1/tasks/route: 20-rule profile, 0-rule profile, no profile", figures)
    print("In-process cost per call:")
    print(micro, end="")
    met = figures["rules20"] >= TARGET * figures["norules"]
    print(f"  target rules20 >= {TARGET}x norules: {'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
