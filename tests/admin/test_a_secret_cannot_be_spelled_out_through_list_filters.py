"""A list's count answers whether a lookup matches, so `?secret__startswith=` one character at a time
would spell a value out: a webhook's signing secret (anyone holding it forges webhooks its receiver
accepts), its URL (often the receiver's credential), a token's hash. Every lookup on those fields is
refused (400), for a person who may view the list too, as Django's own UserAdmin refuses password
lookups. The other fields still filter."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from orchestrator.identity.models import ApiToken
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db

SECRET = "whsec_QmFzZTY0U2VjcmV0S2V5Rm9yVGVzdA=="
URL = "https://hooks.example.com/services/T0SECRETPATH/xyz?token=abc123"


@pytest.fixture
def viewer(client):
    """Staff who may only view subscriptions and tokens."""
    user = get_user_model().objects.create_user("vic", "vic@example.com", "pw-for-tests", is_staff=True)
    for codename in ("view_webhooksubscription", "view_apitoken"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "path, query",
    [
        ("webhooks/webhooksubscription", f"secret__startswith={SECRET[:8]}"),
        ("webhooks/webhooksubscription", f"secret={SECRET}"),
        ("webhooks/webhooksubscription", "secret__regex=^whsec_[A-M]"),
        ("webhooks/webhooksubscription", "url__startswith=https://hooks.example.com/services/T0"),
        ("webhooks/webhooksubscription", "url__icontains=token"),
        ("identity/apitoken", "token_hash__startswith=a"),
    ],
)
def test_every_lookup_on_a_secret_field_is_refused(viewer, make_agent, path, query):
    WebhookSubscription.objects.create(url=URL, secret=SECRET, event_types=["*"])
    make_agent("finance")

    response = viewer.get(f"/admin/{path}/?{query}")

    assert response.status_code == 400


def test_the_other_fields_still_filter(viewer, make_agent):
    WebhookSubscription.objects.create(url=URL, secret=SECRET, event_types=["*"], role="finance")
    make_agent("finance")

    listed = viewer.get("/admin/webhooks/webhooksubscription/?role=finance")
    assert listed.status_code == 200 and listed.context["cl"].result_count == 1
    assert viewer.get("/admin/identity/apitoken/?role=finance").context["cl"].result_count == 1
    token = ApiToken.objects.get()
    page = viewer.get(f"/admin/identity/apitoken/{token.pk}/change/").content.decode()
    assert token.hint in page and token.token_hash not in page
