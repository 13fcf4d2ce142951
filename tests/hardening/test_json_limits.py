"""Every JSON body passes one parser that refuses what would break storage or later reads: nesting
deeper than JSON_MAX_DEPTH, U+0000 in keys or strings, integers beyond 64 bits. Refused with a 400
problem and nothing stored, on every endpoint (the POST /sessions fast path included)."""

import pytest
from django.db import DataError, connection, transaction

from audit.models import AuditEvent
from orchestrator.http.problems import exception_handler
from routing.models import Task
from sessions.models import Session


def nested(depth):
    """A JSON object text nested `depth` levels deep (depth 1 is `{}`)."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def post_raw(client, path, body):
    return client.generic("POST", path, body, content_type="application/json")


def assert_problem_400(response):
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()["detail"]


@pytest.mark.parametrize("depth", [300, 1000, 5000])
def test_deep_session_metadata_is_refused_and_nothing_is_stored(finance, staff, depth):
    detail = assert_problem_400(
        post_raw(finance, "/api/v1/sessions", f'{{"role":"finance","metadata":{nested(depth)}}}')
    )

    assert "deeper than 32" in detail
    assert depth > 1024 or "metadata" in detail  # past orjson's own ceiling the parser cannot say where
    assert not Session.objects.exists()
    assert finance.get("/api/v1/sessions").status_code == 200
    assert staff.get("/api/v1/sessions").status_code == 200


def test_a_body_exactly_as_deep_as_the_limit_is_accepted_and_reads_back(finance):
    # The body is one level; metadata may nest the remaining 31.
    response = post_raw(finance, "/api/v1/sessions", f'{{"role":"finance","metadata":{nested(31)}}}')

    assert response.status_code == 201, response.content
    assert finance.get("/api/v1/sessions").status_code == 200
    assert post_raw(finance, "/api/v1/sessions", f'{{"role":"finance","metadata":{nested(32)}}}').status_code == 400


def test_the_limit_is_a_setting(finance, settings):
    settings.JSON_MAX_DEPTH = 3

    assert post_raw(finance, "/api/v1/sessions", '{"role":"finance","metadata":{"a":{}}}').status_code == 201
    assert_problem_400(post_raw(finance, "/api/v1/sessions", '{"role":"finance","metadata":{"a":{"b":{}}}}'))


def test_a_deep_task_payload_is_refused_and_the_inbox_still_reads(finance, engineering):
    body = f'{{"type":"t","to_role":"engineering","payload":{nested(300)}}}'

    assert_problem_400(post_raw(finance, "/api/v1/tasks/route", body))

    assert not Task.objects.exists()
    assert engineering.get("/api/v1/tasks").status_code == 200


def test_a_deep_patch_is_refused_and_the_audit_log_still_reads(finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    events_before = AuditEvent.objects.count()

    response = finance.generic(
        "PATCH", f"/api/v1/sessions/{session_id}", f'{{"metadata":{nested(300)}}}', content_type="application/json"
    )

    assert_problem_400(response)
    assert AuditEvent.objects.count() == events_before
    assert finance.get("/api/v1/audit").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        '{"role":"finance","metadata":{"k\\u0000ey":1}}',
        '{"role":"finance","metadata":{"key":"val\\u0000ue"}}',
        '{"role":"finance","metadata":{"list":[["deep", "\\u0000"]]}}',
    ],
    ids=["in a key", "in a value", "in a nested list"],
)
def test_nul_in_session_metadata_is_a_400_not_a_500(finance, body):
    assert "U+0000" in assert_problem_400(post_raw(finance, "/api/v1/sessions", body))
    assert not Session.objects.exists()


def test_nul_in_a_patch_is_refused_before_the_database_sees_it(finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    response = finance.generic(
        "PATCH", f"/api/v1/sessions/{session_id}", '{"metadata":{"\\u0000":"x"}}', content_type="application/json"
    )

    assert_problem_400(response)
    assert Session.objects.get(pk=session_id).metadata == {}


@pytest.mark.parametrize(
    "literal",
    [str(2**64), str(2**63), str(-(2**63)), str(-(2**63) - 1), "12345678901234567890123456789", str(2**64 - 1)],
)
def test_integers_beyond_64_bits_are_refused_not_rounded(finance, literal):
    body = f'{{"role":"finance","metadata":{{"n":{literal}}}}}'

    assert "64 bits" in assert_problem_400(post_raw(finance, "/api/v1/sessions", body))
    assert not Session.objects.exists()


@pytest.mark.parametrize("number", [2**63 - 1, -(2**63) + 1, 1234567890123456789])
def test_integers_within_64_bits_are_kept_exact(finance, number):
    response = post_raw(finance, "/api/v1/sessions", f'{{"role":"finance","metadata":{{"n":{number}}}}}')

    assert response.status_code == 201, response.content
    assert Session.objects.get().metadata == {"n": number}
    assert finance.get(f"/api/v1/sessions/{response.json()['session_id']}").json()["metadata"] == {"n": number}


@pytest.mark.parametrize("literal", ["1e20", "-1e19", "9.3e18", "1.5e300"])
def test_floats_beyond_64_bits_are_refused_because_postgresql_would_return_them_as_huge_integers(finance, literal):
    body = f'{{"role":"finance","metadata":{{"n":{literal}}}}}'

    assert "64 bits" in assert_problem_400(post_raw(finance, "/api/v1/sessions", body))
    assert finance.get("/api/v1/sessions").status_code == 200


def test_long_digit_runs_inside_strings_and_floats_are_not_integers(finance):
    body = '{"role":"finance","metadata":{"s":"123456789012345678901234","f":0.12345678901234567890}}'

    assert post_raw(finance, "/api/v1/sessions", body).status_code == 201


@pytest.mark.django_db
def test_a_data_error_from_the_database_is_a_400_problem():
    with pytest.raises(DataError) as raised, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 'not a number'::integer")

    response = exception_handler(raised.value, {})

    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert response.data["status"] == 400


def test_staff_may_write_a_message_only_as_a_role_that_exists(staff, finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    refused = staff.post(
        f"/api/v1/sessions/{session_id}/messages", {"content": "x", "author_role": "nobody"}, format="json"
    )
    accepted = staff.post(
        f"/api/v1/sessions/{session_id}/messages", {"content": "x", "author_role": "manager"}, format="json"
    )

    assert refused.status_code == 400 and "author_role" in refused.json()["errors"]
    assert accepted.status_code == 201
