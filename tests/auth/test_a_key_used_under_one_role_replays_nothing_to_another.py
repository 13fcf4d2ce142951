"""One OIDC subject may hold tokens of several roles. Its Idempotency-Key, first used under one role,
replays nothing to the same subject under another role: the same request sent as another role is
another request (422), and the answer made for the first role's eyes stays with it. Found by an
outside review: a support token of the subject replayed finance's stored allow of a payment check."""

import pytest

from .conftest import bearer

pytestmark = pytest.mark.django_db

KEY = {"HTTP_IDEMPOTENCY_KEY": "one-key-two-roles"}


def test_a_request_replayed_under_another_role_of_the_same_subject_is_refused(provider):
    as_finance = bearer(provider.id_token("agent-2", {"role": "finance"}))
    as_support = bearer(provider.id_token("agent-2", {"role": "support"}))
    check = {"tool": "fetch_status", "arguments": {}}
    first = as_finance.post("/api/v1/policy/check", check, format="json", **KEY)

    again = as_support.post("/api/v1/policy/check", check, format="json", **KEY)

    assert first.status_code == 200, first.content
    assert again.status_code == 422, again.content
    assert "Idempotent-Replayed" not in again


def test_the_same_role_still_replays(provider):
    as_finance = bearer(provider.id_token("agent-2", {"role": "finance"}))
    first = as_finance.post("/api/v1/sessions", {"role": "finance"}, format="json", **KEY)

    again = bearer(provider.id_token("agent-2", {"role": "finance"})).post(
        "/api/v1/sessions", {"role": "finance"}, format="json", **KEY
    )

    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
