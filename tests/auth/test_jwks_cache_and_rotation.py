"""The provider's keys are fetched once and cached: a known key costs no network call, a rotated
key costs exactly one refetch, and a provider outage does not stop agents whose keys are cached."""

import pytest
import requests

from .conftest import bearer

pytestmark = pytest.mark.django_db


def jwks_calls(calls):
    return [url for url in calls if url.endswith("/jwks")]


def get_sessions(token):
    return bearer(token).get("/api/v1/sessions")


def test_requests_under_a_known_key_make_no_call_to_the_provider(provider, provider_calls):
    logged_before = provider.jwks_fetches_logged()
    first_agent = provider.id_token("agent-1", {"role": "finance"})
    second_agent = provider.id_token("agent-2", {"role": "support"})

    statuses = [get_sessions(token).status_code for token in [first_agent] * 5 + [second_agent] * 5]

    assert statuses == [200] * 10
    assert provider_calls == [f"{provider.issuer}/.well-known/openid-configuration", f"{provider.issuer}/jwks"]
    assert provider.jwks_fetches_logged() - logged_before == 1


def test_a_rotated_key_is_accepted_after_exactly_one_refetch(fresh_provider, provider_calls):
    old_token = fresh_provider.id_token("agent-1", {"role": "finance"})
    assert get_sessions(old_token).status_code == 200

    fresh_provider.rotate_key()
    new_token = fresh_provider.id_token("agent-1", {"role": "finance"})

    assert get_sessions(new_token).status_code == 200
    assert len(jwks_calls(provider_calls)) == 2
    assert [get_sessions(new_token).status_code for _ in range(5)] == [200] * 5
    assert len(jwks_calls(provider_calls)) == 2
    assert fresh_provider.jwks_fetches_logged() == 2


def test_a_rotated_key_named_by_kid_is_accepted_after_exactly_one_refetch(fresh_provider, provider_calls):
    def published_kid():
        return requests.get(f"{fresh_provider.issuer}/jwks", timeout=5).json()["keys"][0]["kid"]

    old_kid = published_kid()
    assert get_sessions(fresh_provider.sign(fresh_provider.claims(), headers={"kid": old_kid})).status_code == 200

    fresh_provider.rotate_key()
    new_kid = published_kid()
    response = get_sessions(fresh_provider.sign(fresh_provider.claims(), headers={"kid": new_kid}))

    assert new_kid != old_kid
    assert response.status_code == 200, response.content
    assert len(jwks_calls(provider_calls)) == 2


def test_a_token_under_a_retired_key_is_refused_once_the_new_key_set_is_loaded(fresh_provider):
    old_token = fresh_provider.id_token("agent-1", {"role": "finance"})
    assert get_sessions(old_token).status_code == 200

    fresh_provider.rotate_key()
    assert get_sessions(fresh_provider.id_token("agent-1", {"role": "finance"})).status_code == 200

    assert get_sessions(old_token).status_code == 401


def test_agents_with_cached_keys_keep_working_while_the_provider_is_down(fresh_provider):
    token = fresh_provider.id_token("agent-1", {"role": "finance"})
    assert get_sessions(token).status_code == 200

    fresh_provider.stop()

    assert get_sessions(token).status_code == 200


def test_a_provider_that_cannot_be_reached_before_any_key_is_cached_answers_503(fresh_provider):
    token = fresh_provider.id_token("agent-1", {"role": "finance"})
    fresh_provider.stop()

    response = get_sessions(token)

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
