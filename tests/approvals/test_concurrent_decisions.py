"""Approve and reject arriving at once: one decision wins, the other gets 409, one audit event."""

import threading

import pytest
from django.db import connection

from approvals import services as approvals
from approvals.models import Approval
from audit.models import AuditEvent
from orchestrator.http.errors import Conflict
from orchestrator.identity.principal import Principal
from routing import services as routing


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_number", range(3))
def test_two_simultaneous_decisions_leave_one_winner(round_number):
    sender = Principal(subject="test:finance", role="finance")
    routed = routing.route_task(
        principal=sender,
        type="t",
        to_role="engineering",
        trace_id="race",
        requires_approval=True,
        approver_role="manager",
    )
    barrier = threading.Barrier(2)
    outcomes = {}

    def decide(decision):
        manager = Principal(subject=f"test:manager-{decision}", role="manager")
        barrier.wait()
        try:
            approvals.decide_approval(
                principal=manager, approval_id=routed.approval_id, decision=decision, trace_id="race"
            )
            outcomes[decision] = "won"
        except Conflict as exc:
            outcomes[decision] = exc.extra["current_status"]
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(d,)) for d in ("approve", "reject")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    final = Approval.objects.select_related("task").get(pk=routed.approval_id)
    winner = "approve" if final.status == "approved" else "reject"
    loser = "reject" if winner == "approve" else "approve"
    assert outcomes == {winner: "won", loser: final.status}
    assert final.task.status == ("pending" if winner == "approve" else "cancelled")
    assert AuditEvent.objects.filter(event_type="approval.decided").count() == 1
