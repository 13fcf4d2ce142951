"""A write answered 503 because the database was down leaves nothing of its request behind in the
worker thread that served it.

An API write marks its thread as inside a request transaction (orchestrator.db): services then join
that transaction without a savepoint and audit events are owed to its COMMIT. The mark used to be set
before the transaction began, so when beginning failed (no database) it stayed set for every later
request of that thread: the admin's FSM buttons, the console and anything else that calls a service
inside a transaction of its own lost the savepoint that lets it recover from a refusal and carry on.
"""

import socket

import pytest
from django.db import connection, transaction
from rest_framework.exceptions import APIException

from orchestrator.identity.principal import Principal
from sessions import services
from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)

FINANCE = Principal(subject="token:finance", role="finance")


@pytest.fixture
def database_down(monkeypatch):
    """Point the connection at a port nobody listens on, until the test puts it back."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    dead_port = hole.getsockname()[1]
    hole.close()

    def down():
        connection.close()
        monkeypatch.setitem(connection.settings_dict, "PORT", str(dead_port))

    def up():
        monkeypatch.undo()
        connection.close()

    yield down, up
    up()


def test_after_a_write_answered_503_a_caller_of_a_service_still_recovers_from_its_refusal(finance, database_down):
    down, up = database_down
    assert finance.get("/api/v1/sessions").status_code == 200  # the token is now known to this process
    down()
    assert finance.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 503
    up()

    session = services.create_session(principal=FINANCE, role="finance", trace_id="t")
    with transaction.atomic():
        with pytest.raises(APIException):
            # pending -> completed is no transition: refused with 409.
            services.update_session(principal=FINANCE, session_id=session.id, trace_id="t", status="completed")
        # The refusal rolled back to the service's savepoint; this transaction carries on.
        assert Session.objects.filter(pk=session.id).exists()
