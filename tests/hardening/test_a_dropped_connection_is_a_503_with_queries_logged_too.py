"""A database connection that drops under a request is a 503 whether or not queries are logged
(DEBUG, a test capturing queries). Found by an outside review: the backend's query log opened a cursor
on the dead connection in Django's `finally`, and that raw psycopg error replaced the one that says
"database unavailable": a 500 under DEBUG."""

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


def drop_the_apps_connection():
    connection.ensure_connection()
    backend_pid = connection.connection.info.backend_pid
    # From another connection, as an operator's pg_terminate_backend or a failover would.
    with psycopg.connect(
        connection.connection.info.dsn, password=connection.settings_dict["PASSWORD"] or None
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [backend_pid])


@pytest.mark.parametrize("key", [None, "dropped-1"], ids=["without a key", "with a key"])
def test_a_write_whose_connection_drops_answers_503_with_queries_logged(finance, key):
    before = Session.objects.count()
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    drop_the_apps_connection()

    with CaptureQueriesContext(connection):
        response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json", **headers)

    assert response.status_code == 503, response.content[:300]
    connection.close()
    assert Session.objects.count() == before
