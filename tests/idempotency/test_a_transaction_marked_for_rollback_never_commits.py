"""Inside an API request nothing recovers from an error (orchestrator.db.service_transaction joins
without a savepoint): an error leaving a service's block marks the request's transaction for
rollback, as Django's atomic() does. The keyed path commits with its record in one string of its
own (RequestTransaction.finish_with), and must not commit a transaction Django marked for rollback."""

import pytest
from rest_framework.exceptions import ValidationError

import sessions.services
from orchestrator.db import insert, service_transaction
from orchestrator.http.models import IdempotencyRecord
from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_keyed_write_whose_handler_swallowed_an_error_from_a_service_block_commits_none_of_it(
    client_for, new_key, monkeypatch
):
    client = client_for("finance")
    real_audit = sessions.services._audit

    def audit_after_a_swallowed_failure(session, **kwargs):
        real_audit(session, **kwargs)
        try:
            with service_transaction():
                insert(Session(role="finance", owner="token:half-done"))
                raise ValidationError("the block failed after its write")
        except ValidationError:
            pass  # A bug: the request's transaction is marked for rollback now.

    monkeypatch.setattr(sessions.services, "_audit", audit_after_a_swallowed_failure)

    key = new_key()
    response = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code >= 500
    assert not Session.objects.exists()
    assert not IdempotencyRecord.objects.exists()

    monkeypatch.undo()
    retry = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert retry.status_code == 201  # the key's lock went with the failure
    assert list(Session.objects.values_list("owner", flat=True)) != ["token:half-done"]
