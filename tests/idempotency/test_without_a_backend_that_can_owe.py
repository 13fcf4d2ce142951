"""With server-side binding or an isolation level other than READ COMMITTED (both settable through
DATABASE_URL) nothing travels in front of a statement: the key's claim is a statement of its own,
with the same answers, replay, 422 and 409, never a 500."""

import pytest
from django.db import connection
from psycopg import IsolationLevel

from sessions.models import Session
from tests.idempotency.test_in_flight import hold_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(
    params=[{"server_side_binding": True}, {"isolation_level": IsolationLevel.REPEATABLE_READ}],
    ids=["server-side binding", "repeatable read"],
)
def backend_that_cannot_owe(request):
    options = connection.settings_dict["OPTIONS"]
    saved = dict(options)
    connection.close()
    options.update(request.param)
    connection.ensure_connection()
    assert not connection._owing_allowed()
    yield
    connection.close()
    options.clear()
    options.update(saved)


def post(client, body, key):
    return client.post("/api/v1/sessions", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_replays_another_body_is_422_and_a_duplicate_in_flight_is_409(
    backend_that_cannot_owe, client_for, new_key
):
    client, key = client_for("finance"), new_key()

    first = post(client, {"role": "finance"}, key)
    retry = post(client, {"role": "finance"}, key)
    reused = post(client, {"role": "finance", "metadata": {"n": 2}}, key)

    assert first.status_code == 201, first.content
    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert reused.status_code == 422
    assert Session.objects.count() == 1

    held = new_key()
    with hold_key(first.json()["owner"], held):
        duplicate = post(client, {"role": "finance"}, held)
    assert duplicate.status_code == 409
    assert post(client, {"role": "finance"}, held).status_code == 201
    assert Session.objects.count() == 2
