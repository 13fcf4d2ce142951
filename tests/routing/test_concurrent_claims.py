"""Eight agents claiming at once from a 200-task backlog: every task claimed exactly once, none lost."""

import threading
from collections import Counter

import pytest
from django.db import connection

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing import services
from routing.models import Task

CLAIMERS = 8
TASKS = 200


@pytest.mark.django_db(transaction=True)
def test_200_tasks_claimed_by_8_concurrent_claimers_are_each_claimed_exactly_once():
    sender = Principal(subject="test:sender", role="finance")
    for n in range(TASKS):
        services.route_task(principal=sender, type="t", to_role="engineering", payload={"n": n}, trace_id=f"t{n}")
    claimed = {i: [] for i in range(CLAIMERS)}
    errors = []
    start = threading.Barrier(CLAIMERS)

    def claimer(i):
        agent = Principal(subject=f"test:claimer-{i}", role="engineering")
        try:
            start.wait()
            while (task := services.claim_next_task(principal=agent, trace_id=f"claimer-{i}")) is not None:
                claimed[i].append(task.pk)
        except Exception as exc:  # noqa: BLE001 - any claimer error fails the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(CLAIMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    all_claims = [pk for pks in claimed.values() for pk in pks]
    assert len(all_claims) == TASKS
    assert Counter(all_claims).most_common(1)[0][1] == 1
    assert set(all_claims) == set(Task.objects.values_list("pk", flat=True))
    assert Task.objects.filter(status="claimed").count() == TASKS
    # The claimer recorded on each row is the one that got it back.
    owner = {pk: f"test:claimer-{i}" for i, pks in claimed.items() for pk in pks}
    assert all(owner[pk] == by for pk, by in Task.objects.values_list("pk", "claimed_by"))
    assert AuditEvent.objects.filter(event_type="task.claimed").count() == TASKS
