"""Who is calling: the principal (subject + role), and the bearer credentials that establish it.

Both credential kinds travel in `Authorization: Bearer <token>`: local API tokens (prefix
`orch_`) and OIDC JWTs. Whatever the credential, the rest of the code sees a Principal.
"""

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from orchestrator.models import TOKEN_PREFIX, ApiToken, hash_token


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `subject` is stable per caller and scopes idempotency keys."""

    subject: str
    role: str
    is_staff: bool = False
    display_name: str = ""

    is_authenticated = True
    is_anonymous = False

    def can_act_for(self, role):
        return self.is_staff or role == self.role

    def __str__(self):
        return self.display_name or self.subject


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

# One message for every bad credential: which check failed is logged, never told.
INVALID_CREDENTIALS = "Invalid or expired credentials."


def principal_for_local_token(raw_token):
    token_hash = hash_token(raw_token)
    principal = token_cache.get(token_hash)
    if principal is not None:
        return principal
    token = ApiToken.objects.filter(token_hash=token_hash, revoked_at__isnull=True).first()
    if token is None:
        return None
    principal = Principal(
        subject=token.subject, role=token.role, is_staff=token.is_staff, display_name=token.name
    )
    token_cache.put(token_hash, principal)
    return principal


def revoke_token(*, token):
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    token_cache.clear()


class BearerAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS)
        raw = parts[1]
        if raw.startswith(TOKEN_PREFIX):
            principal = principal_for_local_token(raw)
        else:
            principal = principal_for_jwt(raw)
        if principal is None:
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS)
        return principal, raw

    def authenticate_header(self, request):
        return 'Bearer realm="orchestrator"'


def principal_for_jwt(raw_token):
    """OIDC JWTs are verified by orchestrator.oidc when OIDC_ISSUER is configured."""
    if not settings.OIDC_ISSUER:
        return None
    from orchestrator.oidc import principal_for_jwt as verify

    return verify(raw_token)


class IsAgentOrStaff(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, Principal)


def principal_for_user(user):
    """A human signed in to the admin or dashboard, acting through the same service functions."""
    return Principal(
        subject=f"user:{user.get_username()}",
        role="",
        is_staff=bool(user.is_staff),
        display_name=user.get_username(),
    )
