from collections import Counter

from audit.models import AuditEvent
from sessions.models import Session
from sessions.retention import expire_sessions
from tests.jobs.conftest import expiry_events


def test_idle_live_sessions_expire_with_one_audit_event_each(make_sessions):
    pending = make_sessions(3, status="pending", idle_days=10)
    active = make_sessions(4, status="active", idle_days=10)

    expired = expire_sessions(days=7, batch_size=2)

    assert expired == 7
    assert set(Session.objects.filter(pk__in=pending + active).values_list("status", flat=True)) == {"expired"}
    counts = Counter(expiry_events().values_list("target_id", flat=True))
    assert counts == Counter({str(pk): 1 for pk in pending + active})


def test_the_audit_event_records_before_and_after_status_the_system_actor_and_the_role(make_sessions):
    [session_id] = make_sessions(1, status="pending", idle_days=10, role="support")

    expire_sessions(days=7)

    event = AuditEvent.objects.get(target_id=str(session_id))
    assert event.event_type == "session.transitioned"
    assert event.actor == "system:expire_sessions"
    assert event.role == "support"
    assert event.target_type == "session"
    assert event.metadata["before"] == {"status": "pending"}
    assert event.metadata["after"] == {"status": "expired"}
    assert event.metadata["reason"] == "retention"
    assert event.trace_id


def test_recently_active_and_terminal_sessions_are_left_alone(make_sessions):
    recent = make_sessions(3, status="active", idle_days=2)
    terminal = make_sessions(2, status="completed", idle_days=30) + make_sessions(2, status="failed", idle_days=30)
    before = {s.pk: (s.status, s.updated_at) for s in Session.objects.filter(pk__in=recent + terminal)}

    assert expire_sessions(days=7) == 0

    after = {s.pk: (s.status, s.updated_at) for s in Session.objects.filter(pk__in=recent + terminal)}
    assert after == before
    assert not AuditEvent.objects.exists()


def test_the_retention_period_defaults_to_the_setting(make_sessions, settings):
    settings.SESSION_RETENTION_DAYS = 20
    due = make_sessions(2, idle_days=21)
    kept = make_sessions(2, idle_days=19)

    assert expire_sessions() == 2

    assert set(Session.objects.filter(pk__in=due).values_list("status", flat=True)) == {"expired"}
    assert set(Session.objects.filter(pk__in=kept).values_list("status", flat=True)) == {"active"}


def test_a_second_run_finds_nothing_to_do(make_sessions):
    make_sessions(5, idle_days=10)

    assert expire_sessions(days=7, batch_size=2) == 5
    assert expire_sessions(days=7, batch_size=2) == 0

    assert expiry_events().count() == 5


def test_an_expired_session_refuses_further_transitions_through_the_api(make_sessions, staff):
    [session_id] = make_sessions(1, status="active", idle_days=10)
    expire_sessions(days=7)

    response = staff.patch(f"/api/v1/sessions/{session_id}", {"status": "completed"}, format="json")

    assert response.status_code == 409
    assert response.json()["current_status"] == "expired"
