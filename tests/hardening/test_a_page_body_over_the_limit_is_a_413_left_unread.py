"""Outside the API a body is read before any view (request_framing.PageBodyMiddleware), and one over
MAX_REQUEST_BODY_BYTES is refused with a 413 unread, as the API refuses it. Django's own refusal of it
was a 400 and an ERROR line, which anyone could then write with one header on any path."""

import logging

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method,path", [("POST", "/admin/logout/"), ("GET", "/dashboard/"), ("POST", "/no/such/page")])
def test_a_body_over_the_limit_is_a_413_and_logs_no_error(client, settings, caplog, method, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    with caplog.at_level(logging.INFO):
        response = client.generic(method, path, b"x" * 1025, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 413
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


def test_a_body_at_the_limit_reaches_the_page(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = client.generic("POST", "/admin/login/", b"x" * 1024, content_type="application/x-www-form-urlencoded")

    # The sign-in page itself answers, with the form's errors: the body was read, not refused.
    assert response.status_code == 200
    assert b"Please enter the correct username" in response.content or b"This field is required" in response.content


def test_an_api_body_over_the_limit_is_still_the_apis_problem_413(finance, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = finance.generic(
        "POST", "/api/v1/sessions", b'{"role": "finance"}' + b" " * 1024, content_type="application/json"
    )

    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
