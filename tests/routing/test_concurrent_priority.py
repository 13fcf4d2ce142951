"""Priority and not_before hold under 8 concurrent claimers: claims come in priority order (give or take
the claims in flight at once), and no task is claimed before its not_before."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing import services
from routing.models import Task

CLAIMERS = 8
PRIORITIES = (-50, 0, 10, 90)
PER_PRIORITY = 40
LATE = 20


@pytest.mark.django_db(transaction=True)
def test_8_concurrent_claimers_take_tasks_by_priority_and_never_before_not_before():
    sender = Principal(subject="test:sender", role="finance")
    for n in range(PER_PRIORITY):
        for priority in PRIORITIES:
            services.route_task(principal=sender, type="t", to_role="engineering", trace_id=f"t{n}", priority=priority)
    due_at = timezone.now() + timedelta(seconds=2)
    for _ in range(LATE):
        # The highest priority, but not due until the others are mostly claimed.
        services.route_task(
            principal=sender, type="late", to_role="engineering", trace_id="late", priority=100, not_before=due_at
        )
    expected = len(PRIORITIES) * PER_PRIORITY + LATE
    errors = []
    start = threading.Barrier(CLAIMERS)

    def claimer(i):
        agent = Principal(subject=f"test:claimer-{i}", role="engineering")
        try:
            start.wait()
            while Task.objects.filter(status="pending").exists():
                if services.claim_next_task(principal=agent, trace_id=f"claimer-{i}", lease_seconds=60) is None:
                    threading.Event().wait(0.05)
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
    tasks = {str(task.pk): task for task in Task.objects.all()}
    events = AuditEvent.objects.filter(event_type="task.claimed").order_by("id").values_list("target_id", "actor")
    claims, actors = (list(column) for column in zip(*events, strict=True))
    assert len(claims) == len(set(claims)) == expected
    late = [pk for pk in claims if tasks[pk].type == "late"]
    assert all(tasks[pk].claimed_at >= due_at for pk in late)
    # Each claimer's next claim starts after its previous one committed, and a row another claimer has
    # locked is one that claimer is taking: so among the tasks due from the start, every claimer's own
    # claims come in priority order (then oldest first), however the claimers interleave.
    for i in range(CLAIMERS):
        mine = [
            pk for pk, by in zip(claims, actors, strict=True) if by == f"test:claimer-{i}" and tasks[pk].type == "t"
        ]
        order = [(-tasks[pk].priority, tasks[pk].created_at) for pk in mine]
        assert order == sorted(order), f"claimer {i} took a lower priority before a higher one"
    # Once due, the late tasks (priority 100) go first: a claim that started after due_at (its claimed_at
    # is taken before the statement runs) and still took an early task found every late one claimed or
    # locked, so at most the other claimers' in-flight claims can commit a late task after it.
    for index, pk in enumerate(claims):
        if tasks[pk].type == "t" and tasks[pk].claimed_at >= due_at:
            assert sum(1 for later in claims[index + 1 :] if tasks[later].type == "late") <= CLAIMERS - 1
