"""The people's sign-ins, kept in Django's session store (the console's and the admin's).

Nothing else empties that store: an expired sign-in stays a row until it is cleared, and with OIDC
login on every anonymous visit to /oidc/authenticate/ stores one (the state and nonce of the provider
round trip) for the cookie's lifetime, two weeks (found by an outside review). Such a visit's row now
expires with the round trip (PROVIDER_ROUND_TRIP_SECONDS), and clear_expired runs on the beat."""

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in

# Long enough to sign in at the provider (a password manager, a second factor); a sign-in that
# completes is given the session's full lifetime again (_full_lifetime).
PROVIDER_ROUND_TRIP_SECONDS = 15 * 60


def not_a_password_sign_in(request: Any, credentials: dict[str, Any] | None) -> bool:
    """django-axes counts and locks password sign-ins alone (AXES_WHITELIST_CALLABLE). The provider's
    callback authenticates without a username: counted, ten failed callbacks (a garbage code, a Back
    button) locked every provider sign-in from that address out under one empty username (an outside
    review). The provider limits its own sign-ins."""
    return not (credentials or {}).get("username")


def clear_expired() -> None:
    """Delete the expired sign-ins, as Django's `clearsessions` command does."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()


def _full_lifetime(sender: Any, request: Any, **_: Any) -> None:
    """A completed sign-in keeps the session it started in (Django cycles its key, not its expiry):
    back to the session's full lifetime (SESSION_COOKIE_AGE) from the round trip's."""
    if request is not None and hasattr(request, "session"):
        request.session.set_expiry(None)


def connect() -> None:
    user_logged_in.connect(_full_lifetime, dispatch_uid="identity.sign_ins.full_lifetime")
