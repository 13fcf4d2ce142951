"""Human login to the admin and dashboard through the OIDC provider (mozilla-django-oidc).

Users are matched by the provider's `sub`, never by e-mail: an address can change hands, a
subject cannot. The Django username is `oidc:<sub>`, so no provider subject can take over a
local account. Staff (and, by default, superuser) rights follow the staff claim at every login,
so removing someone from the group at the provider removes their admin access at their next login.
"""

import logging
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from orchestrator.identity import held_roles, provider_http, sign_ins
from orchestrator.identity.acting import acting_as
from orchestrator.identity.columns import fits_a_text_column, storable
from orchestrator.identity.oidc import (
    InvalidToken,
    ProviderUnavailable,
    is_staff_from,
    json_answer,
    provider_keys,
    roles_from,
    verify,
)

logger = logging.getLogger(__name__)

USERNAME_PREFIX = "oidc:"
_USERNAME_MAX = 150

# Who changes a person's staff and superuser flags at a sign-in (orchestrator.identity.people).
OIDC_LOGIN_ACTOR = "system:oidc_login"


def username_for(sub: str) -> str:
    return f"{USERNAME_PREFIX}{sub}"


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's code flow, with endpoints from discovery and the id_token checked by
    orchestrator.identity.oidc (cached keys, audience = this client) instead of a JWKS download per login."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django builds a backend for every request of a signed-in user, so nothing here may
        # reach the provider: the endpoints are looked up only when a login actually runs.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return provider_keys.endpoint("OIDC_OP_TOKEN_ENDPOINT")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:
        return provider_keys.endpoint("OIDC_OP_USER_ENDPOINT")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return provider_keys.endpoint("OIDC_OP_JWKS_ENDPOINT")

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        # A provider that is down or answers nonsense is a failed login, not a server error.
        try:
            return super().authenticate(request, **kwargs)
        except (ProviderUnavailable, requests.RequestException, ValueError, SuspiciousOperation) as exc:
            logger.warning("OIDC login failed: %s", exc)
            return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        try:
            payload = verify(token, audience=self.OIDC_RP_CLIENT_ID)
        except InvalidToken as exc:
            raise SuspiciousOperation(f"id_token refused: {exc}") from None
        if "nonce" in kwargs and payload.get("nonce") != kwargs["nonce"]:
            raise SuspiciousOperation("id_token nonce does not match the login request")
        return payload

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        # mozilla-django-oidc's own call is bounded per read only, and reads the answer with .get():
        # a token endpoint answering `[]` or `"a string"` was a server error at the callback.
        response = provider_http.request("POST", self.OIDC_OP_TOKEN_ENDPOINT, data=payload)
        self.raise_token_response_error(response)
        return _json_object(response, "token endpoint")

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = provider_http.request(
            "GET", self.OIDC_OP_USER_ENDPOINT, headers={"Authorization": f"Bearer {access_token}"}
        )
        response.raise_for_status()
        if response.headers.get("Content-Type", "").lower().startswith("application/jwt"):
            # A provider may sign its userinfo answer (OpenID Connect Core 5.3.2).
            userinfo = self.verify_token(response.text)
        else:
            userinfo = _json_object(response, "userinfo endpoint")
        if userinfo.get("sub") != payload["sub"]:
            raise SuspiciousOperation("userinfo answers for another subject than the id_token")
        # The staff claim may live in either document (Keycloak puts roles in both by default).
        return {**payload, **userinfo}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        sub = claims.get("sub")
        # Not empty (every such person would share the username "oidc:"), not too long for the
        # username, and what a text column holds.
        return (
            isinstance(sub, str) and sub != "" and len(username_for(sub)) <= _USERNAME_MAX and fits_a_text_column(sub)
        )

    def filter_users_by_claims(self, claims: dict[str, Any]) -> QuerySet[Any]:
        return self.UserModel.objects.filter(username=username_for(claims["sub"]))

    def describe_user_by_claims(self, claims: dict[str, Any]) -> str:
        return f"sub {claims.get('sub')}"

    def create_user(self, claims: dict[str, Any]) -> Any:
        user = self.UserModel(username=username_for(claims["sub"]))
        user.set_unusable_password()
        self._apply_claims(user, claims)
        try:
            # A savepoint, so that the transaction the login runs in survives the duplicate below.
            with transaction.atomic(), acting_as(OIDC_LOGIN_ACTOR):
                user.save()
        except IntegrityError:
            # The same person's other first login (a second tab, a double click) created the user
            # since we looked: sign in as that user, as a later login would. It was a 500.
            existing = self.filter_users_by_claims(claims).first()
            if existing is None:
                raise
            return self.update_user(existing, claims)
        _note_held_roles(claims)
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        self._apply_claims(user, claims)
        # One transaction: the flags and their audit event are written together.
        with transaction.atomic(), acting_as(OIDC_LOGIN_ACTOR):
            user.save()
        _note_held_roles(claims)
        return user

    @staticmethod
    def _apply_claims(user: Any, claims: dict[str, Any]) -> None:
        staff = is_staff_from(claims)
        user.is_staff = staff
        user.is_superuser = staff and settings.OIDC_STAFF_IS_SUPERUSER
        # The provider's words, kept only where the user's columns can hold them (no U+0000 and no lone
        # surrogate, which no UTF-8 encodes, in any text column of PostgreSQL; the fields' lengths): a
        # sign-in never fails on a profile field.
        fields = type(user)._meta
        email = claims.get("email")
        fits = (
            isinstance(email, str) and fits_a_text_column(email) and len(email) <= fields.get_field("email").max_length
        )
        user.email = email if fits else ""
        for field, claim in (("first_name", "given_name"), ("last_name", "family_name")):
            value = claims.get(claim)
            limit = fields.get_field(field).max_length
            setattr(user, field, storable(value)[:limit] if isinstance(value, str) else "")


def _note_held_roles(claims: dict[str, Any]) -> None:
    """The roles the provider gives this account are its roles as an agent too: separation of duties
    keeps a person whose account acts for a task's from_role from deciding its approval."""
    held_roles.note(subject=f"oidc:{claims['sub']}", roles=roles_from(claims))


def _json_object(response: requests.Response, endpoint: str) -> dict[str, Any]:
    try:
        document = json_answer(response)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SuspiciousOperation(f"the provider's {endpoint} answered no JSON object")
    return document


class AuthenticationRequestView(OIDCAuthenticationRequestView):
    """The redirect to the provider's login page, its address taken from discovery."""

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_keys.endpoint("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except ProviderUnavailable:
            return HttpResponse("The identity provider is unavailable; retry later.", status=503)
        response: HttpResponse = super().get(request)
        if not request.user.is_authenticated:
            # An anonymous visit stores the round trip's state in a session row of its own: it lives
            # as long as the round trip, not two weeks (orchestrator.identity.sign_ins).
            request.session.set_expiry(sign_ins.PROVIDER_ROUND_TRIP_SECONDS)
        return response


def admin_login(request: HttpRequest) -> HttpResponse:
    """With OIDC login on, the admin's login page hands over to the provider.

    A signed-in user without staff rights gets the admin's own page ("not authorized") rather
    than a trip to the provider, which would sign them straight back in, in an endless loop.
    """
    if request.user.is_authenticated:
        return admin.site.login(request)
    query = urlencode({"next": request.GET.get("next") or reverse("admin:index")})
    return redirect(f"{reverse('oidc_authentication_init')}?{query}")
