"""orchestrator.postgresql: a statement that never reached the server (refused by psycopg before
sending, or a string the server could not parse) sent none of the writes its transaction owed, so
they stay owed: the transaction goes on exactly as with Django's backend, which had written them."""

import pytest
from django.db import DataError, ProgrammingError, connection, transaction

from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


def _owe_session(owner):
    connection.owe(
        "INSERT INTO agent_sessions_session (id, role, status, metadata, owner, created_at, updated_at) "
        "VALUES (gen_random_uuid(), 'finance', 'pending', '{}', %s, now(), now())",
        [owner],
    )


def _owners():
    return sorted(Session.objects.values_list("owner", flat=True))


@pytest.mark.parametrize(
    "sql, params, error",
    [
        ("SELECT %s, %s", [1], ProgrammingError),
        ("SELECT %s", ["nul \x00 inside"], DataError),
    ],
    ids=["wrong number of parameters", "a value psycopg refuses"],
)
def test_writes_owed_before_a_statement_psycopg_refused_to_send_are_still_committed(sql, params, error):
    with transaction.atomic():
        Session.objects.create(role="finance", owner="token:sent")
        _owe_session("token:owed")
        with pytest.raises(error), connection.cursor() as cursor:
            cursor.execute(sql, params)
    assert _owners() == ["token:owed", "token:sent"]


def test_writes_owed_before_a_first_statement_the_server_could_not_parse_are_still_committed():
    with transaction.atomic():
        _owe_session("token:owed")
        with pytest.raises(ProgrammingError), connection.cursor() as cursor:
            cursor.execute("SELEC 1")
        Session.objects.create(role="finance", owner="token:sent")
    assert _owners() == ["token:owed", "token:sent"]
