"""A replay answers from its stored record without reading the facts a new write is checked
against. A role's pause, read when the process's cache of it had lapsed, used to be the statement
that carried the key's claim: the claim's refusal (a replay) came as that read's error, the answer
was lost, and every replay read the pause again (half a replay's CPU time, docs/benchmarks.md). On
a miss the claim now goes on its own first; a new write still reads the pause."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator.identity import access_cache

pytestmark = pytest.mark.django_db(transaction=True)


def sent(queries):
    return [query["sql"] for query in queries.captured_queries]


def test_a_replay_with_the_pause_no_longer_cached_does_not_read_it(client_for, new_key):
    client, key = client_for("finance"), new_key()
    first = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    access_cache.clear_all()

    with CaptureQueriesContext(connection) as queries:
        retry = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert retry["Idempotent-Replayed"] == "true" and retry.content == first.content
    assert not [sql for sql in sent(queries) if "policy_rolepause" in sql], sent(queries)


def test_a_new_write_with_the_pause_no_longer_cached_still_reads_it(client_for, new_key):
    client = client_for("finance")
    access_cache.clear_all()

    with CaptureQueriesContext(connection) as queries:
        made = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=new_key())

    assert made.status_code == 201
    assert [sql for sql in sent(queries) if "policy_rolepause" in sql]


def test_a_paused_roles_new_write_is_still_refused_after_the_claim_went_alone(client_for, staff, new_key):
    staff.post("/api/v1/roles/finance/pause", format="json")
    access_cache.clear_all()

    refused = client_for("finance").post(
        "/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=new_key()
    )

    assert refused.status_code == 423
