"""Bearer credentials for the API: `Authorization: Bearer <token>` carries either a local API token
(prefix `orch_`) or an OIDC JWT; both become a Principal."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from orchestrator.identity import oidc
from orchestrator.identity.models import TOKEN_PREFIX
from orchestrator.identity.principal import INVALID_CREDENTIALS, Principal
from orchestrator.identity.tokens import principal_for_local_token


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
            principal = oidc.principal_for_jwt(raw)
        if principal is None:
            raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS)
        return principal, raw

    def authenticate_header(self, request):
        return 'Bearer realm="orchestrator"'


class IsAgentOrStaff(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, Principal)
