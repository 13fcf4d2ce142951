"""verify_audit remembers how far the chain verified, so the console can say it without a walk."""

from django.core.management import call_command
from django.db import connection

from audit import services
from audit.models import AuditEvent


def record(n):
    for i in range(n):
        services.record(
            event_type="test.event", actor="test", role="finance", trace_id="t", target_type="x", target_id=str(i)
        )


def test_a_clean_walk_is_remembered_as_verified_through_the_head(db):
    record(3)
    services.seal_audit()

    result = services.verify_audit()

    stored = services.last_verification()
    assert result.ok
    assert (stored.first_seq, stored.verified_through, stored.head_seq, stored.broken_seq) == (1, 3, 3, None)


def test_a_broken_walk_is_remembered_with_where_it_broke(db):
    record(3)
    services.seal_audit()
    second = AuditEvent.objects.get(seal_seq=2)
    with connection.cursor() as cursor:
        # Edit a sealed row past the append-only trigger, as a database superuser could.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE audit_auditevent SET actor = 'mallory' WHERE id = %s", [second.id])
        cursor.execute("SET session_replication_role = DEFAULT")

    services.verify_audit()

    stored = services.last_verification()
    assert stored.broken_seq == 2
    assert stored.verified_through == 1
    assert "edited" in stored.reason


def test_the_command_overwrites_the_one_stored_row(db):
    record(2)
    services.seal_audit()
    call_command("verify_audit")
    record(1)
    services.seal_audit()
    call_command("verify_audit")

    assert services.last_verification().verified_through == 3
