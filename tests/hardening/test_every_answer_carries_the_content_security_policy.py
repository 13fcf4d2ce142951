"""Every answer carries one Content-Security-Policy: pages, the API, refusals and errors alike. The
browser runs only script files of this origin, so what an agent wrote cannot run as a script in a
staff member's console even if it escaped escaping (an outside review named its absence). Headless
Chromium checks that the pages work under it (tests/dashboard/test_browser.py)."""

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from orchestrator.http.content_security import HEADER, RESOURCE_POLICY_HEADER, policy_header

pytestmark = pytest.mark.django_db


def directives(response):
    """The answer's policy as {directive: [sources]}."""
    policy = {}
    for part in response[HEADER].split(";"):
        name, *sources = part.split()
        policy[name] = sources
    return policy


def test_a_console_page_may_run_only_this_origins_script_files(admin_client):
    policy = directives(admin_client.get("/dashboard/"))

    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]


@pytest.mark.parametrize("path", ["/admin/login/", "/api/docs/", "/api/docs/?script=", "/dashboard/", "/no-such-page/"])
def test_pages_sign_in_and_the_api_docs_carry_it(client, path):
    response = client.get(path)

    assert directives(response)["script-src"] == ["'self'"], (path, response.status_code)


def test_the_api_docs_page_has_no_inline_script(client):
    html = client.get("/api/docs/").content.decode()

    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts, html
    assert all("src=" in attributes for attributes in scripts), scripts


def test_api_answers_and_problems_carry_it(finance):
    answers = [
        finance.get("/api/v1/sessions"),
        finance.get("/api/v1/no-such-route"),
        finance.post("/api/v1/sessions", {"role": "not-a-role"}, format="json"),
    ]

    assert [answer.status_code for answer in answers] == [200, 404, 400]
    assert all(directives(answer)["script-src"] == ["'self'"] for answer in answers)


def test_a_refusal_before_any_view_carries_it(finance, client):
    # Refused by the request-framing middleware, far above the views.
    refused = [
        finance.get("/api/v1/sessions/%00"),
        client.generic("POST", "/admin/login/", b"", CONTENT_LENGTH="twelve"),
    ]

    assert [answer.status_code for answer in refused] == [400, 400]
    assert all(directives(answer)["frame-ancestors"] == ["'none'"] for answer in refused)


def test_the_https_redirect_and_an_unknown_host_refused_carry_it():
    # Both are answered by Django's SecurityMiddleware itself, before anything below it runs.
    with override_settings(SECURE_SSL_REDIRECT=True):
        redirect = Client().get("/admin/")
    unknown_host = Client().get("/admin/", HTTP_HOST="elsewhere.example")

    assert [redirect.status_code, unknown_host.status_code] == [301, 400]
    assert all(directives(answer)["script-src"] == ["'self'"] for answer in [redirect, unknown_host])


@pytest.mark.parametrize("path", ["/api/docs/?script=", "/admin/login/", "/api/v1/health"])
def test_no_other_site_may_load_an_answer_as_its_own_resource(client, path):
    # The docs' initialiser is a script file that holds a CSRF token (an outside review).
    assert client.get(path)[RESOURCE_POLICY_HEADER] == "same-origin"


def test_an_unauthenticated_api_call_carries_it(anonymous):
    response = anonymous.get("/api/v1/sessions")

    assert response.status_code == 401
    assert directives(response)["script-src"] == ["'self'"]


def test_the_header_is_the_settings_directives_in_order():
    assert policy_header({"default-src": ["'self'"], "img-src": ["'self'", "data:"]}) == (
        "default-src 'self'; img-src 'self' data:"
    )


@pytest.mark.parametrize("source", ["'self'; script-src *", "'self', script-src *", "'self'\r\nX-Other: 1"])
def test_a_source_that_would_start_another_directive_stops_the_server_starting(source):
    with pytest.raises(ImproperlyConfigured, match="script-src"):
        policy_header({"script-src": [source]})


def test_the_server_reads_the_policy_from_settings():
    with override_settings(CONTENT_SECURITY_POLICY={"default-src": ["'none'"]}):
        response = Client().get("/no-such-page/")

    assert response[HEADER] == "default-src 'none'"


@pytest.fixture
def a_failing_page(monkeypatch):
    """GET /admin/login/ raises, as a bug would."""
    from django.contrib.admin import sites

    def explode(self, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(sites.AdminSite, "each_context", explode)
    client = Client(raise_request_exception=False)
    return lambda: client.get("/admin/login/", HTTP_ACCEPT="text/html")


def test_a_server_error_carries_it(a_failing_page):
    response = a_failing_page()

    assert response.status_code == 500
    assert directives(response)["script-src"] == ["'self'"]


def test_under_debug_djangos_error_page_runs_its_own_inline_script(a_failing_page):
    # The technical 500 page shows a frame's variables with an inline script, which the policy
    # would block; DEBUG never serves anyone but a developer (django-csp leaves it out too).
    with override_settings(DEBUG=True):
        response = a_failing_page()

    assert response.status_code == 500
    assert "<script>" in response.content.decode()
    assert HEADER not in response
    assert response[RESOURCE_POLICY_HEADER] == "same-origin"
