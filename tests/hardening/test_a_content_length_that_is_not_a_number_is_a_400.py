"""A Content-Length that is not ASCII digits, or has more digits than any body (int() refuses past
4300), is refused with a 400 before anything reads the body: the embedded default's server passes it
through (gunicorn refuses it itself), and reading the body then raised a ValueError, a 500."""

import pytest

pytestmark = pytest.mark.django_db

BODY = b'{"role": "finance"}'


@pytest.mark.parametrize("length", ["abc", "-5", " 19", "19 ", "1e3", "\u0661\u0669", "1" * 20, "0" * 4301 + "19"])
def test_an_api_write_with_such_a_length_is_a_problem_400_and_creates_nothing(make_agent, length):
    client = make_agent("finance")

    response = client.generic("POST", "/api/v1/sessions", BODY, content_type="application/json", CONTENT_LENGTH=length)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/malformed_content_length")
    assert response["X-Trace-Id"]
    assert client.get("/api/v1/sessions").json()["total"] == 0


def test_a_console_form_with_such_a_length_is_a_400(client):
    response = client.generic("POST", "/admin/login/", b"username=a", CONTENT_LENGTH="abc")

    assert response.status_code == 400


def test_a_length_of_digits_is_read_as_before(make_agent):
    client = make_agent("finance")

    response = client.generic(
        "POST", "/api/v1/sessions", BODY, content_type="application/json", CONTENT_LENGTH=str(len(BODY))
    )

    assert response.status_code == 201
