from django.apps import apps
from django.urls import NoReverseMatch, reverse

from dashboard import access
from webhooks.selectors import disabled_destinations


def console_nav(request):
    """Which console pages the navigation offers the signed-in person (only on console pages)."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.namespace != "dashboard" or not request.user.is_authenticated:
        return {}
    nav = access.nav_permissions(request.user)
    readable = apps.is_installed("policy") and request.user.has_perm("policy.view_profileversion")
    nav["profiles"] = _profiles_url() if readable else None
    context = {"console_nav": nav}
    if request.user.is_staff:
        # Webhooks the dispatcher gave up on: people are no longer told through them (docs/webhooks.md).
        # Named by destination only: a URL's path or query can be the receiver's credential.
        context["disabled_webhooks"] = disabled_destinations(limit=5)
    return context


def _profiles_url():
    """The console's profiles page, for people who may read profiles."""
    try:
        return reverse("dashboard:profiles")
    except NoReverseMatch:
        return None
