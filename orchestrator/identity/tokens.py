"""Local API tokens: the embedded default's agent credential. Issuing, revoking and deleting go
through the service functions below (one audited path for the command, the admin and tests), and
every change invalidates the lookup cache of every process at once.

identity is kernel and may not import the audit app (pyproject.toml contracts): the audit app
registers its recorder here at start (register_audit_sink, audit/apps.py), the way apps above
routing register their route steps. Without a recorder the services refuse to run, so no token
change is ever unaudited.
"""

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError

from orchestrator.identity.models import ApiToken, hash_token
from orchestrator.identity.principal import Principal
from orchestrator.identity.roles import require_known_role

AuditSink = Callable[..., Any]
_audit_sink: AuditSink | None = None

# The shared version stamp: any token change writes a new random value; a process-cached lookup
# is used only while the stamp it was cached under is still the current one.
STAMP_KEY = "identity:api-token-stamp"
# Caches that one process cannot share with another: without a shared stamp, no process cache.
_PROCESS_LOCAL_CACHES = ("LocMemCache", "DummyCache")


def register_audit_sink(sink: AuditSink) -> None:
    """`sink(**record_kwargs)` writes one audit event in the caller's transaction (audit.services.record)."""
    global _audit_sink
    _audit_sink = sink


def _audit(*, event_type: str, actor: Principal | str, token: ApiToken, trace_id: str, metadata: dict) -> None:
    if _audit_sink is None:
        raise ImproperlyConfigured("No audit recorder is registered; token changes must be audited.")
    _audit_sink(
        event_type=event_type,
        actor=getattr(actor, "subject", actor),
        role=token.role,
        trace_id=trace_id,
        target_type="api_token",
        target_id=token.pk,
        metadata=metadata,
    )


def _token_facts(token: ApiToken) -> dict[str, object]:
    return {"name": token.name, "role": token.role, "is_staff": token.is_staff, "hint": token.hint}


def cache_is_shared() -> bool:
    backend = str(settings.CACHES["default"]["BACKEND"])
    return not backend.endswith(_PROCESS_LOCAL_CACHES)


def current_stamp() -> str | None:
    """The shared stamp, or None when there is none to trust (no shared cache, Redis down): then
    every lookup goes to the database."""
    if not cache_is_shared():
        return None
    stamp = cache.get(STAMP_KEY)
    if stamp is None:
        # Missing (first use, eviction, Redis restart): start a new value; losing one only costs
        # every process a fresh lookup, never a stale one.
        cache.add(STAMP_KEY, uuid.uuid4().hex, timeout=None)
        stamp = cache.get(STAMP_KEY)
    return stamp if isinstance(stamp, str) else None


def _new_stamp() -> None:
    cache.set(STAMP_KEY, uuid.uuid4().hex, timeout=None)


def _invalidate_everywhere() -> None:
    """Called inside the change's transaction: a new stamp now (lookups racing the change read the
    database again) and another once it commits (entries cached from the old rows meanwhile are
    dropped too), and this process's own cache at once."""
    token_cache.clear()
    if cache_is_shared():
        _new_stamp()
        transaction.on_commit(_new_stamp)
    transaction.on_commit(token_cache.clear)


class _TokenCache:
    """Process-local cache of token lookups, each entry valid for API_TOKEN_CACHE_SECONDS and
    only under the stamp it was cached with."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Principal, float, str]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str, stamp: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry and entry[2] == stamp and entry[1] > time.monotonic():
            return entry[0]
        return None

    def put(self, token_hash: str, principal: Principal, stamp: str) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token_hash] = (principal, time.monotonic() + settings.API_TOKEN_CACHE_SECONDS, stamp)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


token_cache = _TokenCache()


def principal_for_local_token(raw_token: str) -> Principal | None:
    token_hash = hash_token(raw_token)
    # Read before the database, so an entry is never newer than the stamp it is filed under.
    stamp = current_stamp()
    if stamp is not None:
        principal = token_cache.get(token_hash, stamp)
        if principal is not None:
            return principal
    token = ApiToken.objects.filter(token_hash=token_hash, revoked_at__isnull=True).first()
    if token is None:
        return None
    principal = Principal(subject=token.subject, role=token.role, is_staff=token.is_staff, display_name=token.name)
    if stamp is not None:
        token_cache.put(token_hash, principal, stamp)
    return principal


def issue_token(
    *, actor: Principal | str, role: str, name: str = "", is_staff: bool = False, trace_id: str = ""
) -> tuple[ApiToken, str]:
    """Mint a token for a known role; returns (ApiToken, raw token). The raw token is never stored."""
    require_known_role(role, field="role")
    name_limit = ApiToken._meta.get_field("name").max_length or 0
    if len(name) > name_limit or "\x00" in name:
        raise ValidationError({"name": [f"At most {name_limit} characters, without U+0000."]})
    with transaction.atomic():
        token, raw = ApiToken.issue(role=role, name=name, is_staff=is_staff)
        _audit(event_type="token.issued", actor=actor, token=token, trace_id=trace_id, metadata=_token_facts(token))
        _invalidate_everywhere()
    return token, raw


def _locked_token(token_id: int) -> ApiToken:
    token = ApiToken.objects.select_for_update().filter(pk=token_id).first()
    if token is None:
        raise NotFound(f"No API token with id {token_id}.")
    return token


def revoke_token(*, actor: Principal | str, token_id: int, trace_id: str = "") -> ApiToken:
    """Revoke a token (idempotent: an already revoked token is left as it is, with no new event)."""
    with transaction.atomic():
        token = _locked_token(token_id)
        if token.revoked_at is not None:
            return token
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        _audit(
            event_type="token.revoked",
            actor=actor,
            token=token,
            trace_id=trace_id,
            metadata={
                **_token_facts(token),
                "before": {"revoked_at": None},
                "after": {"revoked_at": token.revoked_at.isoformat()},
            },
        )
        _invalidate_everywhere()
    return token


def delete_token(*, actor: Principal | str, token_id: int, trace_id: str = "") -> None:
    """Delete a token row; the audit event keeps what it was."""
    with transaction.atomic():
        token = _locked_token(token_id)
        revoked_at = token.revoked_at.isoformat() if token.revoked_at else None
        facts = {**_token_facts(token), "created_at": token.created_at.isoformat(), "revoked_at": revoked_at}
        _audit(event_type="token.deleted", actor=actor, token=token, trace_id=trace_id, metadata=facts)
        token.delete()
        _invalidate_everywhere()
