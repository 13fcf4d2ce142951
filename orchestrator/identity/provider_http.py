"""Every call to the identity provider, its whole answer bounded by OIDC_TIMEOUT.

requests' timeout bounds each wait for a byte, not the call: a provider trickling its answer a byte
at a time held a fetch (and whatever waited on it: a refetch's lock, a login) for as long as it
liked (found by an outside review). Each call here runs under an AttemptDeadline; when it passes,
the sockets the call uses are shut down, which ends at once whatever TLS handshake or read is
blocked on them, and the call raises requests.Timeout. The name lookup and each TCP connect come
before there is a socket to cut: each connect waits at most OIDC_TIMEOUT, so a name with several
addresses that do not answer can take that long for each (docs/auth.md).
"""

import http.cookiejar
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.poolmanager import ProxyManager

from orchestrator.attempt_deadline import AttemptDeadline, WatchedHTTPPool, WatchedHTTPSPool


def request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """`method url` at the provider, answered whole within OIDC_TIMEOUT seconds, else requests.Timeout."""
    seconds = settings.OIDC_TIMEOUT
    with AttemptDeadline(seconds) as deadline:
        try:
            response = _session.request(method, url, timeout=seconds, **kwargs)
        except Exception as exc:
            if deadline.expired:
                # Whatever the cut socket raised, the deadline is what ended the call.
                raise requests.Timeout(f"no whole answer from {url} within {seconds:g} s") from exc
            raise
        if deadline.expired:
            # The socket was shut down mid-answer: an answer without a length then ends early, looking whole.
            raise requests.Timeout(f"no whole answer from {url} within {seconds:g} s")
    return response


_WATCHED_POOLS = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections whose sockets the call's deadline can cut (through an HTTP
    proxy from the environment too; a SOCKS proxy keeps connections of its own, bounded per read only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> ProxyManager:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager


def _watched_session() -> requests.Session:
    session = requests.Session()
    # One session serves every person's login: a cookie the provider (or a balancer before it) set
    # during one person's token or userinfo call was sent with the next person's (found by an outside
    # review). Its calls need none, so it keeps none.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    for prefix in ("http://", "https://"):
        session.mount(prefix, _DeadlineAdapter())
    return session


_session = _watched_session()
