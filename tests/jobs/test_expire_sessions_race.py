"""Acceptance 4: API transitions racing the expiry on the same sessions never overwrite each other."""

import threading
from collections import Counter

import pytest
from django.db import connection, transaction
from django.test import Client

from audit.models import AuditEvent
from sessions.models import Session
from sessions.retention import expire_sessions
from tests.jobs.threads import run_in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def finishing_events(session_ids):
    return AuditEvent.objects.filter(
        event_type="session.transitioned",
        target_id__in=[str(pk) for pk in session_ids],
        metadata__after__status__in=["completed", "expired"],
    )


@pytest.mark.parametrize("round_number", range(3))
def test_api_completions_racing_the_expiry_leave_one_terminal_state_and_one_event_per_session(
    make_sessions, staff, round_number
):
    assert connection.vendor == "postgresql", "this race needs real row locks"
    session_ids = make_sessions(60, status="active", idle_days=10)
    authorization = staff._credentials["HTTP_AUTHORIZATION"]
    start = threading.Barrier(2)
    statuses = {}

    def complete_all():
        client = Client(HTTP_AUTHORIZATION=authorization)
        start.wait()
        for session_id in reversed(session_ids):
            response = client.patch(
                f"/api/v1/sessions/{session_id}", {"status": "completed"}, content_type="application/json"
            )
            statuses[session_id] = response.status_code

    def expire_all():
        start.wait()
        expire_sessions(days=7, batch_size=5)

    api, api_errors = run_in_thread(complete_all)
    job, job_errors = run_in_thread(expire_all)
    api.join()
    job.join()

    assert api_errors == [] and job_errors == []
    final = dict(Session.objects.filter(pk__in=session_ids).values_list("pk", "status"))
    assert set(final.values()) <= {"completed", "expired"}
    assert set(statuses.values()) <= {200, 409}
    for session_id, code in statuses.items():
        assert final[session_id] == ("completed" if code == 200 else "expired")
    events = list(finishing_events(session_ids).values_list("target_id", "metadata__after__status"))
    assert Counter(target for target, _ in events) == Counter({str(pk): 1 for pk in session_ids})
    assert {target: after for target, after in events} == {str(pk): status for pk, status in final.items()}


def test_a_session_locked_by_an_api_call_is_skipped_and_keeps_the_api_result(make_sessions, staff):
    locked_id, *others = make_sessions(4, status="active", idle_days=10)
    locked = threading.Event()
    release = threading.Event()
    authorization = staff._credentials["HTTP_AUTHORIZATION"]
    responses = []

    def complete_while_holding_the_row():
        with transaction.atomic():
            Session.objects.select_for_update().get(pk=locked_id)
            locked.set()
            release.wait(timeout=30)
            # The request joins this transaction (a savepoint), exactly as if it had taken the lock itself.
            responses.append(
                Client(HTTP_AUTHORIZATION=authorization).patch(
                    f"/api/v1/sessions/{locked_id}", {"status": "completed"}, content_type="application/json"
                )
            )

    holder, errors = run_in_thread(complete_while_holding_the_row)
    assert locked.wait(timeout=30)
    try:
        expired = expire_sessions(days=7)
    finally:
        release.set()
        holder.join()

    assert errors == []
    assert expired == 3
    assert responses[0].status_code == 200
    assert Session.objects.get(pk=locked_id).status == "completed"
    assert set(Session.objects.filter(pk__in=others).values_list("status", flat=True)) == {"expired"}
    assert list(finishing_events([locked_id]).values_list("metadata__after__status", flat=True)) == ["completed"]
    assert expire_sessions(days=7) == 0
