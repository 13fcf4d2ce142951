"""Local API tokens: the embedded default's agent credential, and the cache that keeps their
lookup off the hot path."""

import threading
import time

from django.conf import settings
from django.utils import timezone

from orchestrator.identity.models import ApiToken, hash_token
from orchestrator.identity.principal import Principal


class _TokenCache:
    """Process-local cache of token lookups: the hot path makes no query for a known token."""

    def __init__(self):
        self._entries = {}
        self._lock = threading.Lock()

    def get(self, token_hash):
        entry = self._entries.get(token_hash)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        return None

    def put(self, token_hash, principal):
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token_hash] = (principal, time.monotonic() + settings.API_TOKEN_CACHE_SECONDS)

    def clear(self):
        with self._lock:
            self._entries.clear()


token_cache = _TokenCache()


def principal_for_local_token(raw_token: str) -> Principal | None:
    token_hash = hash_token(raw_token)
    principal = token_cache.get(token_hash)
    if principal is not None:
        return principal
    token = ApiToken.objects.filter(token_hash=token_hash, revoked_at__isnull=True).first()
    if token is None:
        return None
    principal = Principal(subject=token.subject, role=token.role, is_staff=token.is_staff, display_name=token.name)
    token_cache.put(token_hash, principal)
    return principal


def revoke_token(*, token: ApiToken) -> None:
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    token_cache.clear()
