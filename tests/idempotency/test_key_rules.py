"""The header's rules: optional unless required, off when disabled, short printable keys only."""

import pytest
from django.test import override_settings

from orchestrator.http.models import IdempotencyRecord
from sessions.models import Session

pytestmark = pytest.mark.django_db


def post(client, **headers):
    return client.post("/api/v1/sessions", {"role": "finance"}, format="json", **headers)


def test_without_a_key_requests_are_processed_normally_and_nothing_is_stored(client_for):
    client = client_for("finance")

    first, second = post(client), post(client)

    assert first.status_code == second.status_code == 201
    assert Session.objects.count() == 2
    assert not IdempotencyRecord.objects.exists()


@override_settings(IDEMPOTENCY_REQUIRED=True)
def test_in_required_mode_a_missing_key_answers_400_and_creates_nothing(client_for):
    client = client_for("finance")

    response = post(client)

    assert response.status_code == 400
    assert response.json()["type"].endswith("/idempotency_key_required")
    assert not Session.objects.exists()


@override_settings(IDEMPOTENCY_REQUIRED=True)
def test_in_required_mode_reads_need_no_key_and_keyed_writes_succeed(client_for):
    client = client_for("finance")

    assert client.get("/api/v1/sessions").status_code == 200
    assert post(client, HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201


@override_settings(IDEMPOTENCY_ENABLED=False)
def test_when_disabled_keys_are_ignored_and_nothing_is_stored(client_for):
    client = client_for("finance")

    first = post(client, HTTP_IDEMPOTENCY_KEY="same")
    second = post(client, HTTP_IDEMPOTENCY_KEY="same")
    oversize = post(client, HTTP_IDEMPOTENCY_KEY="k" * 300)

    assert first.status_code == second.status_code == oversize.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert Session.objects.count() == 3
    assert not IdempotencyRecord.objects.exists()


def test_a_key_of_255_characters_is_accepted(client_for):
    response = post(client_for("finance"), HTTP_IDEMPOTENCY_KEY="k" * 255)

    assert response.status_code == 201
    assert IdempotencyRecord.objects.get().key == "k" * 255


@pytest.mark.parametrize(
    "key",
    ["k" * 256, "", '""', "caf\xe9", "tab\there", "bell\x07", "line-end\n"],
    # A final line feed once passed (`$` matches before it) as a key apart from "line-end".
    ids=["256-characters", "empty", "empty-quoted", "non-ascii", "control-tab", "control-bell", "final-line-feed"],
)
def test_an_oversize_or_invalid_key_answers_400_and_creates_nothing(client_for, key):
    response = post(client_for("finance"), HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/invalid_idempotency_key")
    assert not Session.objects.exists()


def test_a_key_on_a_read_is_ignored(client_for):
    client = client_for("finance")

    response = client.get("/api/v1/sessions", HTTP_IDEMPOTENCY_KEY="k" * 300)

    assert response.status_code == 200
    assert not IdempotencyRecord.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_an_oversize_body_with_a_key_answers_413_and_stores_nothing(client_for):
    body = {"role": "finance", "metadata": {"blob": "x" * 2048}}

    response = client_for("finance").post("/api/v1/sessions", body, format="json", HTTP_IDEMPOTENCY_KEY="big")

    assert response.status_code == 413
    assert not Session.objects.exists()
    assert not IdempotencyRecord.objects.exists()
