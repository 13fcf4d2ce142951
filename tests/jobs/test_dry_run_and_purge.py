"""Acceptance 5: --dry-run changes nothing and reports the count; purge_sessions deletes only terminal sessions."""

from io import StringIO

from django.core.management import call_command

from audit.models import AuditEvent
from sessions.models import Session, SessionMessage
from sessions.retention import purge_sessions


def table_state():
    return (
        sorted(Session.objects.values_list("pk", "status", "updated_at")),
        sorted(AuditEvent.objects.values_list("pk", flat=True)),
    )


def test_expire_sessions_dry_run_reports_the_count_and_changes_nothing(make_sessions):
    make_sessions(4, status="active", idle_days=10)
    make_sessions(2, status="pending", idle_days=10)
    make_sessions(3, status="active", idle_days=1)
    before = table_state()
    out = StringIO()

    call_command("expire_sessions", "--dry-run", "--days", "7", stdout=out)

    assert "6 sessions" in out.getvalue()
    assert "would expire" in out.getvalue()
    assert table_state() == before


def test_expire_sessions_command_expires_and_reports_progress_as_plain_lines_off_a_terminal(make_sessions):
    make_sessions(5, status="active", idle_days=10)
    out = StringIO()

    call_command("expire_sessions", "--days", "7", "--batch-size", "2", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines == [
        "Expiring sessions: 2/5",
        "Expiring sessions: 4/5",
        "Expiring sessions: 5/5",
        "Expired 5 sessions idle for more than 7 days.",
    ]
    assert Session.objects.filter(status="expired").count() == 5


def test_purge_sessions_dry_run_reports_the_count_and_changes_nothing(make_sessions):
    make_sessions(3, status="completed", idle_days=40)
    before = table_state()
    out = StringIO()

    call_command("purge_sessions", "--older-than", "30", "--dry-run", stdout=out)

    assert "3 terminal sessions" in out.getvalue()
    assert table_state() == before


def test_purge_deletes_old_terminal_sessions_and_their_transcripts_but_no_live_session(make_sessions):
    old_terminal = (
        make_sessions(2, status="completed", idle_days=40)
        + make_sessions(2, status="failed", idle_days=40)
        + make_sessions(2, status="expired", idle_days=40)
    )
    recent_terminal = make_sessions(2, status="completed", idle_days=5)
    old_live = make_sessions(2, status="active", idle_days=400) + make_sessions(2, status="pending", idle_days=400)
    SessionMessage.objects.create(session_id=old_terminal[0], author_role="finance", content="done")

    deleted = purge_sessions(older_than_days=30, batch_size=4)

    assert deleted == 6
    assert set(Session.objects.values_list("pk", flat=True)) == set(recent_terminal + old_live)
    assert not SessionMessage.objects.exists()


def test_purge_keeps_every_audit_event_and_records_one_purge_event_per_session(finance, make_sessions):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    finance.patch(f"/api/v1/sessions/{session_id}", {"status": "active"}, format="json")
    finance.patch(f"/api/v1/sessions/{session_id}", {"status": "completed"}, format="json")
    Session.objects.filter(pk=session_id).update(
        updated_at=Session.objects.get(pk=session_id).updated_at.replace(year=2000)
    )
    history = list(AuditEvent.objects.filter(target_id=session_id).values_list("pk", flat=True))
    out = StringIO()

    call_command("purge_sessions", "--older-than", "30", stdout=out)

    assert not Session.objects.filter(pk=session_id).exists()
    assert set(history) <= set(AuditEvent.objects.values_list("pk", flat=True))
    purged = AuditEvent.objects.get(target_id=session_id, event_type="session.purged")
    assert purged.actor == "system:purge_sessions"
    assert purged.metadata["status"] == "completed"
    assert "Deleted 1 terminal sessions" in out.getvalue()


def test_bad_arguments_are_refused_with_a_message(db):
    import pytest
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--older-than"):
        call_command("purge_sessions", "--older-than", "-1")
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("expire_sessions", "--batch-size", "0")
