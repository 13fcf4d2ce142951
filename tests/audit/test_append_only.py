"""On PostgreSQL the database itself refuses to change audit events, whatever SQL the app sends."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit import services
from audit.models import AuditEvent


def _refused(sql, params=None):
    with pytest.raises(DatabaseError, match="append-only|inserted unsealed"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)


def test_a_raw_update_of_a_sealed_row_fails_at_the_database(sealed_chain):
    _refused("UPDATE audit_auditevent SET metadata = '{\"forged\": true}' WHERE seal_seq = 3")
    _refused("UPDATE audit_auditevent SET hash = repeat('f', 64) WHERE seal_seq = 3")
    _refused("UPDATE audit_auditevent SET seal_seq = NULL, prev_hash = '', hash = '' WHERE seal_seq = 3")

    assert AuditEvent.objects.get(seal_seq=3).metadata == {"n": 2}


def test_a_raw_delete_of_a_sealed_row_fails_at_the_database(sealed_chain):
    _refused("DELETE FROM audit_auditevent WHERE seal_seq = 3")

    assert AuditEvent.objects.count() == 20


def test_truncate_fails_at_the_database(sealed_chain):
    _refused("TRUNCATE audit_auditevent")

    assert AuditEvent.objects.count() == 20


def test_an_unsealed_row_cannot_be_edited_or_deleted_either(make_events):
    event_id = make_events(1)[0]

    _refused("UPDATE audit_auditevent SET actor = 'someone-else' WHERE id = %s", [event_id])
    _refused("DELETE FROM audit_auditevent WHERE id = %s", [event_id])


def test_sealing_may_not_change_any_other_column(make_events):
    event_id = make_events(1)[0]

    _refused(
        "UPDATE audit_auditevent SET seal_seq = 1, prev_hash = repeat('0', 64), hash = repeat('a', 64), "
        "metadata = '{}' WHERE id = %s",
        [event_id],
    )


def test_a_sealed_row_cannot_be_sealed_again(sealed_chain):
    _refused(
        "UPDATE audit_auditevent SET seal_seq = 99, prev_hash = repeat('0', 64), hash = repeat('a', 64) "
        "WHERE seal_seq = 3"
    )


def test_a_row_cannot_be_inserted_already_sealed(db):
    _refused(
        "INSERT INTO audit_auditevent (event_type, actor, role, timestamp, trace_id, target_type, target_id, "
        "metadata, seal_seq, prev_hash, hash) VALUES ('x', 'a', 'finance', now(), '', 'session', '1', '{}', 1, "
        "repeat('0', 64), repeat('a', 64))"
    )


def test_the_one_time_seal_of_an_unsealed_row_is_allowed(make_events):
    make_events(3)

    assert services.seal_audit() == 3
    assert list(AuditEvent.objects.order_by("seal_seq").values_list("seal_seq", flat=True)) == [1, 2, 3]


def test_the_orm_refuses_to_change_or_delete_events(sealed_chain):
    event = AuditEvent.objects.get(seal_seq=1)
    event.metadata = {"forged": True}

    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    with pytest.raises(ValueError):
        AuditEvent.objects.filter(seal_seq=1).update(metadata={})
    with pytest.raises(ValueError):
        AuditEvent.objects.all().delete()
