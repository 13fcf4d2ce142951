"""An identity provider that is down or hangs is asked at most once per refetch interval before any
key is held, and holds up no request whose key is already held when the cached set is refreshed."""

import socket
import threading

import pytest

from orchestrator.identity import oidc

from .conftest import bearer
from .scripted_endpoint import ScriptedEndpoint

pytestmark = pytest.mark.django_db


class SilentHost:
    """Accepts every TCP connection and never answers, as a hung provider does; counts them."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = []
        self.connected = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            self.connected.set()

    def close(self):
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_host():
    host = SilentHost()
    yield host
    host.close()


def test_tokens_sent_while_the_provider_is_down_before_any_key_is_held_make_one_call(fresh_provider, provider_calls):
    token = fresh_provider.id_token("agent-1", {"role": "finance"})
    fresh_provider.stop()

    answers = {bearer(token).get("/api/v1/sessions").status_code for _ in range(20)}

    assert answers == {503}
    assert len(provider_calls) == 1


def test_the_provider_is_asked_again_after_the_refetch_interval(fresh_provider, provider_calls, settings):
    token = fresh_provider.id_token("agent-1", {"role": "finance"})
    fresh_provider.stop()
    assert bearer(token).get("/api/v1/sessions").status_code == 503

    settings.OIDC_JWKS_MIN_REFETCH_SECONDS = 0
    assert bearer(token).get("/api/v1/sessions").status_code == 503

    assert len(provider_calls) == 2


def test_a_refresh_of_a_stale_key_set_from_a_hung_provider_holds_up_no_request(provider, settings, silent_host):
    token = provider.id_token("agent-1", {"role": "finance"})
    assert bearer(token).get("/api/v1/sessions").status_code == 200
    settings.OIDC_OP_JWKS_ENDPOINT = f"http://127.0.0.1:{silent_host.port}/jwks"
    settings.OIDC_JWKS_CACHE_SECONDS = 0
    settings.OIDC_TIMEOUT = 60

    answers = [bearer(token).get("/api/v1/sessions").status_code for _ in range(5)]

    # Answered while the refresh still waits on the hung provider, and only one refresh asks it.
    assert answers == [200] * 5
    assert silent_host.connected.wait(10)
    assert len(silent_host.connections) == 1
    silent_host.close()


def test_a_failed_refresh_keeps_the_keys_and_backs_off(provider, settings, silent_host, provider_calls):
    token = provider.id_token("agent-1", {"role": "finance"})
    assert bearer(token).get("/api/v1/sessions").status_code == 200
    settings.OIDC_OP_JWKS_ENDPOINT = f"http://127.0.0.1:{silent_host.port}/jwks"
    settings.OIDC_JWKS_CACHE_SECONDS = 0
    settings.OIDC_TIMEOUT = 0.5
    fetched_before = len(provider_calls)

    assert bearer(token).get("/api/v1/sessions").status_code == 200
    assert silent_host.connected.wait(10)
    for thread in threading.enumerate():
        if thread.name == "oidc-jwks-refresh":
            thread.join(10)
    settings.OIDC_JWKS_CACHE_SECONDS = 3600
    settings.OIDC_JWKS_MIN_REFETCH_SECONDS = 30

    assert [bearer(token).get("/api/v1/sessions").status_code for _ in range(5)] == [200] * 5
    assert len(provider_calls) == fetched_before + 1
    assert oidc.provider_keys._refreshing is False


@pytest.mark.parametrize("keys", ["null", "5", '"a key"', "{}"])
def test_a_key_set_whose_keys_are_no_list_is_a_provider_failure(provider, settings, provider_calls, keys):
    # Found by an outside review: {"keys": null} was a 500 on every request, and a fetch for each.
    odd_keys = ScriptedEndpoint(f'{{"keys": {keys}}}'.encode())
    try:
        settings.OIDC_OP_JWKS_ENDPOINT = odd_keys.url
        token = provider.id_token("agent-1", {"role": "finance"})

        answers = [bearer(token).get("/api/v1/sessions").status_code for _ in range(5)]
    finally:
        odd_keys.stop()

    assert answers == [503] * 5
    assert len(provider_calls) == 1
