"""Production connects as a role with rights on the tables and nothing more (docs/audit.md): the key's
claim, its refusals and the replay work for such a role as for the superuser the tests run as."""

import pytest
from django.db import connection

from sessions.models import Session
from tests.idempotency.test_in_flight import hold_key

pytestmark = pytest.mark.django_db(transaction=True)

ROLE = "orchestrator_app_not_superuser"


@pytest.fixture
def as_an_application_role():
    """The test's connection logs in again as a role with rights on the tables only (SET ROLE would keep
    the superuser's session, which PostgreSQL still asks for some rights)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {ROLE}")
        cursor.execute(f"CREATE ROLE {ROLE} NOSUPERUSER LOGIN")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
    superuser = connection.settings_dict["USER"]
    connection.close()
    connection.settings_dict["USER"] = ROLE
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["USER"] = superuser
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {ROLE}")
            cursor.execute(f"DROP ROLE {ROLE}")


def test_a_role_that_is_not_a_superuser_gets_its_write_its_replay_its_422_and_its_409(
    as_an_application_role, client_for, new_key
):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('is_superuser')")
        assert cursor.fetchone() == ("off",)
    client, key = client_for("finance"), new_key()

    first = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    replay = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    reused = client.post("/api/v1/sessions", {"role": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    held = new_key()
    with hold_key(first.json()["owner"], held):
        in_flight = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=held)

    assert first.status_code == 201, first.content
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert reused.status_code == 422
    assert in_flight.status_code == 409
    assert Session.objects.count() == 1
