"""The middleware the people's pages need (cookies: sessions, the signed-in user, flash messages,
htmx) hands an API request straight on, and still runs for every page. CSRF stays Django's own
class for every path: the deploy check looks for it by name (orchestrator/settings.py)."""

import pytest
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django_htmx.middleware import HtmxMiddleware

PAGE_MIDDLEWARE = [
    (SessionMiddleware, "process_request"),
    (AuthenticationMiddleware, "process_request"),
    (MessageMiddleware, "process_request"),
    (HtmxMiddleware, "__call__"),
]


class Reached(Exception):
    pass


@pytest.fixture(params=PAGE_MIDDLEWARE, ids=lambda entry: entry[0].__name__)
def tripwire(request, monkeypatch):
    middleware, method = request.param

    def reached(self, *args, **kwargs):
        raise Reached(middleware.__name__)

    monkeypatch.setattr(middleware, method, reached)
    return middleware


def test_an_api_request_never_reaches_it(tripwire, finance):
    session = finance.post("/api/v1/sessions", {"role": "finance"}, format="json")
    assert session.status_code == 201

    assert finance.get(f"/api/v1/sessions/{session.json()['session_id']}").status_code == 200
    # A browser's cookies make no difference to the API.
    finance.cookies["csrftoken"] = "x" * 32
    finance.cookies["sessionid"] = "y" * 32
    assert finance.get("/api/v1/sessions/unknown").status_code == 400


def test_a_page_request_still_goes_through_it(tripwire, client, db):
    with pytest.raises(Reached, match=tripwire.__name__):
        client.get("/dashboard/")
