"""Two requests moving one session at once: exactly one wins, the other gets 409."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from audit.models import AuditEvent
from sessions.models import Session


def race(raw_authorization, session_id, targets):
    barrier = threading.Barrier(len(targets))
    results = {}

    def move(target):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=raw_authorization)
        barrier.wait()
        try:
            results[target] = client.patch(f"/api/v1/sessions/{session_id}", {"status": target}, format="json")
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_number", range(5))
def test_complete_and_fail_at_once_leave_one_winner_and_one_audit_event(make_agent, round_number):
    assert connection.vendor == "postgresql", "this race needs real row locks"
    agent = make_agent("finance")
    session_id = agent.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    agent.patch(f"/api/v1/sessions/{session_id}", {"status": "active"}, format="json")

    results = race(agent._credentials["HTTP_AUTHORIZATION"], session_id, ["completed", "failed"])

    assert sorted(response.status_code for response in results.values()) == [200, 409]
    winner = next(target for target, response in results.items() if response.status_code == 200)
    loser = next(response for response in results.values() if response.status_code == 409)
    assert Session.objects.get(pk=session_id).status == winner
    assert loser.json()["current_status"] == winner
    finishing_events = AuditEvent.objects.filter(
        target_id=session_id, event_type="session.transitioned", metadata__before__status="active"
    )
    assert [event.metadata["after"]["status"] for event in finishing_events] == [winner]
