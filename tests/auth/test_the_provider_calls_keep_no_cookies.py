"""Calls to the identity provider keep no cookies: one HTTP session serves every person's login, and
a cookie the provider (or a balancer before it) set during one person's token or userinfo call was
sent with the next person's. Found by an outside review."""

from orchestrator.identity import provider_http

from .scripted_endpoint import ScriptedEndpoint


def test_a_cookie_the_provider_set_is_not_sent_with_the_next_call(settings):
    settings.OIDC_TIMEOUT = 5
    endpoint = ScriptedEndpoint(headers={"Set-Cookie": "idp_session=one-persons; Path=/"})
    try:
        for _ in range(3):
            assert provider_http.request("GET", endpoint.url).status_code == 200
    finally:
        endpoint.stop()

    assert [headers.get("cookie") for headers in endpoint.received] == [None, None, None]
