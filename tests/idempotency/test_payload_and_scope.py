"""A key names one request of one caller: another payload is refused, another caller is independent."""

import pytest

from orchestrator.http.models import IdempotencyRecord
from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, path, body, key):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_the_same_key_with_another_body_answers_422_and_creates_nothing(client_for, new_key):
    client, key = client_for("finance"), new_key()
    post(client, "/api/v1/sessions", {"role": "finance", "metadata": {"amount": 10}}, key)

    response = post(client, "/api/v1/sessions", {"role": "finance", "metadata": {"amount": 1000}}, key)

    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/idempotency_key_reused")
    assert Session.objects.count() == 1


def test_the_same_key_on_another_endpoint_answers_422(client_for, new_key):
    client, key = client_for("finance"), new_key()
    session_id = post(client, "/api/v1/sessions", {"role": "finance"}, key).json()["session_id"]

    response = post(client, f"/api/v1/sessions/{session_id}/messages", {"content": "hi"}, key)

    assert response.status_code == 422
    assert not Session.objects.get().messages.exists()


def test_the_same_key_from_another_caller_is_processed_independently(client_for):
    alice, bob = client_for("finance"), client_for("finance")

    alice_first = post(alice, "/api/v1/sessions", {"role": "finance"}, "shared-key")
    bob_first = post(bob, "/api/v1/sessions", {"role": "finance"}, "shared-key")
    alice_retry = post(alice, "/api/v1/sessions", {"role": "finance"}, "shared-key")
    bob_retry = post(bob, "/api/v1/sessions", {"role": "finance"}, "shared-key")

    assert alice_first.status_code == bob_first.status_code == 201
    assert "Idempotent-Replayed" not in bob_first
    assert alice_first.json()["session_id"] != bob_first.json()["session_id"]
    assert alice_retry.content == alice_first.content
    assert bob_retry.content == bob_first.content
    assert Session.objects.count() == 2
    assert IdempotencyRecord.objects.filter(key="shared-key").count() == 2


def test_another_caller_with_the_same_key_and_another_body_is_not_refused(client_for):
    alice, bob = client_for("finance"), client_for("manager")
    post(alice, "/api/v1/sessions", {"role": "finance"}, "shared-key")

    response = post(bob, "/api/v1/sessions", {"role": "manager"}, "shared-key")

    assert response.status_code == 201
    assert response.json()["role"] == "manager"


def test_a_key_is_never_looked_up_for_a_caller_who_fails_authentication(client_for, anonymous):
    owner = client_for("finance")
    post(owner, "/api/v1/sessions", {"role": "finance"}, "secret-key")
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer orch_not-a-real-token")

    response = post(anonymous, "/api/v1/sessions", {"role": "finance"}, "secret-key")

    assert response.status_code == 401
    assert "session_id" not in response.json()
