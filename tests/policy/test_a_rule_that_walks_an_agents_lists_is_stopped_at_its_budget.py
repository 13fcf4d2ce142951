"""A rule whose time grows faster than what an agent sends (a comprehension macro: each level walks a
list the agent chose the length of) is evaluated in a child process, stopped past
POLICY_EVALUATION_SECONDS or POLICY_EVALUATION_MEMORY_MB, and then denies: before, the engine held
the worker for as long as the rule ran (two nested `exists` over 100,000 numbers: over an hour),
and nothing could interrupt it. A rule stopped is a policy.error naming the budget; the next check
is evaluated as before."""

import gc
import os
import resource
import subprocess
import sys
import threading
import time

import cel
import pytest
from django.conf import settings
from prometheus_client import REGISTRY

from audit.models import AuditEvent
from policy import evaluator, services
from tests.policy.conftest import FINANCE

PAIRS = "task.payload.items.exists(a, task.payload.items.exists(b, a + b == -1))"


def profile(when, effect="deny"):
    return {**FINANCE, "rules": [{"id": "walks", "when": when, "effect": effect, "reason": "Walked."}]}


def route(agent, **payload):
    return agent.post(
        "/api/v1/tasks/route", {"type": "invoice.check", "to_role": "manager", "payload": payload}, format="json"
    )


def assert_denied_with_error(response, *words):
    assert response.status_code == 403, response.content
    assert response.json()["rule"] == "walks"
    error = AuditEvent.objects.get(event_type="policy.error").metadata
    assert error["rule"] == "walks"
    for word in words:
        assert word in error["error"], error["error"]


def stopped(role):
    return REGISTRY.get_sample_value("orchestrator_policy_evaluations_stopped_total", {"role": role}) or 0


def test_a_rule_past_its_time_is_stopped_and_denies(finance, load_profile, settings):
    settings.POLICY_EVALUATION_SECONDS = 0.3
    load_profile(profile(PAIRS, effect="allow"))
    stopped_before = stopped("finance")

    # 3,000 numbers: nine million pairs, seconds of the engine's time.
    response = route(finance, items=list(range(3000)))

    assert_denied_with_error(response, "ran past its deadline", "POLICY_EVALUATION_SECONDS (0.3 s)")
    assert stopped("finance") == stopped_before + 1


def test_a_rule_past_its_memory_is_stopped_and_denies(finance, load_profile, settings):
    settings.POLICY_EVALUATION_MEMORY_MB = 256
    load_profile(profile("task.payload.items.map(i, task.payload.text + task.payload.text).size() > 0"))

    # 400 copies of 600 kB: 240 MB.
    response = route(finance, items=list(range(400)), text="t" * 300_000)

    assert_denied_with_error(response, "died", "POLICY_EVALUATION_MEMORY_MB (256 MiB)")


def test_the_check_after_a_stopped_one_is_evaluated_as_before(finance, load_profile, settings):
    settings.POLICY_EVALUATION_SECONDS = 0.3
    load_profile(profile(PAIRS))
    assert route(finance, items=list(range(3000))).status_code == 403

    assert route(finance, items=[1, 2, 3]).status_code == 202
    denied = route(finance, items=[1, -2])
    assert denied.status_code == 403 and denied.json()["detail"] == "Walked."


APART, IF_LARGE = evaluator.APART, evaluator.APART_IF_LARGE


@pytest.mark.parametrize(
    ("when", "placement"),
    [
        (PAIRS, APART),
        ("task.payload.items.all(i, i > 0)", APART),
        ("[1, 2].map(i, i * 2) == [2, 4]", APART),
        ("task.payload.items.filter(i, i > 0).size() > 1", APART),
        ("task.payload.items.exists_one(i, i > 0)", APART),
        # A comment the engine reads as part of a string, hiding the code after it (outside review).
        ('"""\\X41 //""" + string(size(task.payload.items.filter(x, x > 0))) + """\n""" == ""', APART),
        ('task.type in"""//""" || size(task.payload.items.filter(x, x > 0)) < 0 || """\n""" == ""', APART),
        # The engine's other spelling of exists_one (found by an outside review).
        ("task.payload.items.existsOne(i, i > 0)", APART),
        ("task.payload.items.exists // a comment\n (i, i > 0)", APART),
        ("task.payload.items.exists\t(i, i > 0)", APART),
        ("task.payload.items.someMacroOfALaterEngine(i, i > 0)", APART),
        ('"// not a comment" == task.type || task.payload.items.exists(i, i > 0)', APART),
        ("task.type.matches(task.payload.pattern)", APART),
        ('matches(task.type, "^invoice")', APART),
        ('task.type.matches("a") && task.type.matches(task.payload.pattern + "")', APART),
        ('task.type.matches("^invoice[.]")', IF_LARGE),
        ('task.type.matches(r"^invoice(s)?")', IF_LARGE),
        ('task.type.matches( // the pattern\n "^invoice" )', IF_LARGE),
        ('task.type == "invoice" && task.payload.amount > 1000', IF_LARGE),
        ('task.type == "exists(" && task.payload.note == "map(x, x)"', IF_LARGE),
        ("1 in (task.payload.items)", IF_LARGE),
        ("size (task.payload.items) > 0 && (task.payload.amount + 1) * 2 > 0", IF_LARGE),
        ('double(task.payload.amount) > 1.0 && task.type.startsWith("inv")', IF_LARGE),
    ],
)
def test_a_rule_runs_apart_unless_every_call_it_makes_is_known_to_be_linear(when, placement):
    assert services._placement(cel.compile(when)) == placement


def test_no_shipped_rule_runs_apart_for_a_request_of_ordinary_size(shipped):
    served = [
        rule
        for role in settings.ORCHESTRATOR_ROLES
        if (active := services.active_profile(role))
        for rule in active.rules
    ]

    assert served
    assert [rule.id for rule in served if rule.placement == APART] == []


DENY_LIST = " || ".join(f'task.payload.path.startsWith("/secret{n}/")' for n in range(40))


def test_every_rule_runs_apart_once_the_variables_are_large(finance, load_profile, settings, monkeypatch):
    """This engine copies a map to read a field of it: forty reads of `task.payload.path` beside a MB of
    other keys took 2.1 s in the worker (an outside review)."""
    settings.POLICY_EVALUATION_SECONDS = 0.3
    load_profile(profile(DENY_LIST))
    assert services._placement(cel.compile(DENY_LIST)) == IF_LARGE
    with monkeypatch.context() as small:
        small.setattr(evaluator, "Evaluation", None)  # a small request never reaches the evaluator
        assert route(finance, path="/srv/ok", other={"note": "x" * 1000}).status_code == 202

    response = route(finance, path="/srv/ok", other={str(n): 1 for n in range(85_000)})

    assert_denied_with_error(response, "ran past its deadline")


def test_a_literal_pattern_over_a_large_text_is_stopped_at_the_budget(finance, load_profile, settings):
    settings.POLICY_EVALUATION_SECONDS = 0.05
    load_profile(profile('task.payload.text.matches("[\\\\w.+-]{1,64}@example[.]com")', effect="allow"))

    assert route(finance, text="someone@example.com").status_code == 202
    # 600 kB the class walks: about a second of the engine's time.
    assert_denied_with_error(route(finance, text="a" * 600_000), "ran past its deadline")


ANSWERS = [
    ("items.exists(i, i == 2)", {"items": [1, 2]}),
    ("items.all(i, i == 2)", {"items": [1, 2]}),
    ("items.map(i, i)", {"items": [1, 2]}),
    ("items.exists(i, i.amount > 1)", {"items": [1, 2]}),
    ("items.exists(i, missing == i)", {"items": [1]}),
    ('items.exists(i, i == "1")', {"items": [1]}),
    ("items.filter(i, i > 1).size() == 1", {"items": [1, 2]}),
    ("size(items.filter(i, i > 9223372036854775806)) == 1", {"items": [9223372036854775807]}),
    ("items.exists(i, i + 1 > 0)", {"items": [9223372036854775807]}),
]


def answer_in_process(when, variables):
    try:
        value = cel.compile(when).execute(cel.Context(variables))
    except Exception as exc:
        return ("error", str(exc))
    return ("ok", value) if isinstance(value, bool) else ("error", f"'when' gave {type(value).__name__}, not a bool")


def answer_apart(when, variables):
    try:
        return ("ok", evaluator.Evaluation(variables, seconds=10, memory_bytes=512 << 20).run(when))
    except evaluator.RuleError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize(("when", "variables"), ANSWERS)
def test_a_rule_run_apart_answers_as_the_engine_answers_in_process(when, variables):
    assert answer_apart(when, variables) == answer_in_process(when, variables)


def test_threads_each_get_their_own_answers():
    failures = []

    def ask(n):
        for round_ in range(15):
            items = [n, round_]
            got = evaluator.Evaluation({"items": items}, seconds=10, memory_bytes=512 << 20).run(
                f"items.exists(i, i == {n}) && items.all(i, i == {n} || i == {round_})"
            )
            if got is not True:
                failures.append((n, round_, got))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []


def test_a_forked_process_asks_a_child_of_its_own():
    assert evaluator.Evaluation({"items": [1]}, seconds=10, memory_bytes=512 << 20).run("items.exists(i, i == 1)")
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the forked process; it reports through the pipe)
        try:
            answer = evaluator.Evaluation({"items": [2]}, seconds=10, memory_bytes=512 << 20).run(
                "items.exists(i, i == 2)"
            )
            os.write(writable, b"yes" if answer is True else b"no")
        finally:
            os._exit(0)
    os.close(writable)
    os.waitpid(pid, 0)

    assert os.read(readable, 3) == b"yes"
    assert evaluator.Evaluation({"items": [3]}, seconds=10, memory_bytes=512 << 20).run("items.exists(i, i == 3)")


def test_a_worker_holding_over_a_thousand_descriptors_still_asks_its_child():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.fail(f"this machine allows {hard} open files; the test needs 1,200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    answers = []
    try:
        # A thread of its own has no child yet: the one it starts gets pipes past descriptor 1,100.
        thread = threading.Thread(
            target=lambda: answers.append(
                evaluator.Evaluation({"items": [1]}, seconds=10, memory_bytes=512 << 20).run("items.exists(i, i == 1)")
            )
        )
        thread.start()
        thread.join()
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    assert answers == [True]


def test_a_threads_child_ends_with_the_thread():
    children = []

    def ask():
        evaluator.Evaluation({"items": [1]}, seconds=10, memory_bytes=512 << 20).run("items.exists(i, i == 1)")
        children.append(evaluator._children.child.process.pid)

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    del thread
    gc.collect()

    # Reaped: kept running (and unreaped) it would still take a signal.
    with pytest.raises(ProcessLookupError):
        os.kill(children[0], 0)


def test_a_new_memory_cap_is_the_one_the_next_check_runs_under():
    variables = {"items": list(range(40)), "text": "t" * 3_000_000}
    swelling = "items.map(i, text + text).size() > 0"  # 40 copies of 6 MB: 240 MB

    assert evaluator.Evaluation(variables, seconds=20, memory_bytes=1024 << 20).run(swelling)
    with pytest.raises(evaluator.EvaluationStopped, match="died"):
        evaluator.Evaluation(variables, seconds=20, memory_bytes=256 << 20).run(swelling)


def _alive(pid):
    """Whether `pid` runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_child_dies_with_a_worker_killed_mid_check():
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from policy import evaluator\n"
            "child = evaluator._child(memory_bytes=512 << 20)\n"
            "print(child.process.pid, flush=True)\n"
            "evaluator.Evaluation({'l': list(range(3000))}, seconds=60, memory_bytes=512 << 20)"
            ".run('l.exists(a, l.exists(b, l.exists(c, a + b + c == -1)))')\n",
        ],
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
    )
    child = int(worker.stdout.readline())
    time.sleep(0.5)  # into the rule, which runs for minutes

    worker.kill()  # as gunicorn kills a worker past its timeout, or the OOM killer does
    worker.wait()
    worker.stdout.close()

    for _ in range(100):
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)
