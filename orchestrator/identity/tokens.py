"""Local API tokens: the embedded default's agent credential. Issuing, revoking and deleting go
through the service functions below (one audited path for the command, the admin and tests). A
revoke or a delete returns only once no process anywhere still accepts the token
(orchestrator.identity.access_cache).

identity is kernel and may not import the audit app (pyproject.toml contracts): the audit app
registers its recorder here at start (register_audit_sink, audit/apps.py), the way apps above
routing register their route steps. Without a recorder the services refuse to run, so no token
change is ever unaudited. A person's rights are recorded through it too (orchestrator.identity.people).
"""

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed, NotFound, ValidationError

from orchestrator.identity.access_cache import AccessCache, wait_out_after_commit
from orchestrator.identity.columns import fits_a_text_column
from orchestrator.identity.models import ApiToken, hash_token
from orchestrator.identity.principal import INVALID_CREDENTIALS, Principal
from orchestrator.identity.roles import require_known_role

AuditSink = Callable[..., Any]
_audit_sink: AuditSink | None = None

# Principals by token hash, each for at most ENTRY_SECONDS (access_cache explains the bound). A write
# committing late whose token was revoked or deleted meanwhile is refused as its request would be now.
token_cache: AccessCache[Principal] = AccessCache(
    "api tokens", refusal=lambda token_hash, principal: AuthenticationFailed(INVALID_CREDENTIALS)
)


def register_audit_sink(sink: AuditSink) -> None:
    """`sink(**record_kwargs)` writes one audit event in the caller's transaction (audit.services.record)."""
    global _audit_sink
    _audit_sink = sink


def record_audit_event(**record_kwargs: Any) -> None:
    """Write one audit event in the caller's transaction; refuses to run without a recorder."""
    if _audit_sink is None:
        raise ImproperlyConfigured("No audit recorder is registered; identity changes must be audited.")
    _audit_sink(**record_kwargs)


def _audit(*, event_type: str, actor: Principal | str, token: ApiToken, trace_id: str, metadata: dict) -> None:
    record_audit_event(
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


def _lookup(token_hash: str) -> Principal | None:
    token = ApiToken.objects.filter(token_hash=token_hash, revoked_at__isnull=True).first()
    if token is None:
        return None
    return Principal(subject=token.subject, role=token.role, is_staff=token.is_staff, display_name=token.name)


def principal_for_local_token(raw_token: str) -> Principal | None:
    # Kept under the token's hash, like the database: a process holds no raw token beyond the request.
    token_hash = hash_token(raw_token)
    return token_cache.lookup(token_hash, lambda: _lookup(token_hash))


def issue_token(
    *, actor: Principal | str, role: str, name: str = "", is_staff: bool = False, trace_id: str = ""
) -> tuple[ApiToken, str]:
    """Mint a token for a known role; returns (ApiToken, raw token). The raw token is never stored."""
    require_known_role(role, field="role")
    name_limit = ApiToken._meta.get_field("name").max_length or 0
    # No text column of PostgreSQL holds U+0000 or a lone surrogate (what argv gives for a byte that
    # is not UTF-8): such a name was a raw UnicodeEncodeError from the database driver.
    if len(name) > name_limit or not fits_a_text_column(name):
        raise ValidationError({"name": [f"At most {name_limit} characters, without U+0000 or lone surrogates."]})
    with transaction.atomic():
        token, raw = ApiToken.issue(role=role, name=name, is_staff=is_staff)
        # No wait: a lookup that found nothing is never kept, so no process holds this token yet.
        _audit(event_type="token.issued", actor=actor, token=token, trace_id=trace_id, metadata=_token_facts(token))
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
            # Revoked a moment ago, maybe, by a call still waiting: this one too returns only once no
            # process can still hold the token from before that commit (the caller cannot tell when it was).
            wait_out_after_commit(token_cache)
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
        wait_out_after_commit(token_cache)
    return token


def delete_token(*, actor: Principal | str, token_id: int, trace_id: str = "") -> None:
    """Delete a token row; the audit event keeps what it was."""
    with transaction.atomic():
        token = _locked_token(token_id)
        revoked_at = token.revoked_at.isoformat() if token.revoked_at else None
        facts = {**_token_facts(token), "created_at": token.created_at.isoformat(), "revoked_at": revoked_at}
        _audit(event_type="token.deleted", actor=actor, token=token, trace_id=trace_id, metadata=facts)
        token.delete()
        wait_out_after_commit(token_cache)
