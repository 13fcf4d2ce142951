"""Bearer credentials for the API: `Authorization: Bearer <token>` carries either a local API token
(prefix `orch_`) or an OIDC JWT; both become a Principal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from orchestrator.identity import oidc
from orchestrator.identity.models import TOKEN_PREFIX
from orchestrator.identity.principal import INVALID_CREDENTIALS, Principal
from orchestrator.identity.tokens import principal_for_local_token

if TYPE_CHECKING:
    # DRF's settings import this module while DRF's views are still loading: types only.
    from rest_framework.request import Request
    from rest_framework.views import APIView


def principal_for_bearer(raw: str) -> Principal | None:
    """Who the bearer credential `raw` stands for now, or None when it stands for no one (unknown,
    revoked, expired, badly signed); a JWT's own refusals (a token of no known role) are raised."""
    if raw.startswith(TOKEN_PREFIX):
        return principal_for_local_token(raw)
    return oidc.principal_for_jwt(raw)


def still_stands_for(raw: str, principal: Principal) -> bool:
    """Whether the bearer credential `raw` still stands for `principal`: a long-lived answer (an
    audit stream) asks while it runs. A JWT that expired meanwhile, or whose role is no longer known,
    stands for no one; its refusal is for the next request to answer."""
    try:
        return principal_for_bearer(raw) == principal
    except exceptions.APIException:
        return False


class BearerAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Principal, str] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS)
        raw = parts[1]
        principal = principal_for_bearer(raw)
        if principal is None:
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS)
        return principal, raw

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="orchestrator"'


class IsAgentOrStaff(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.user, Principal)
