"""The SSRF guard refuses the ranges registered after Python 3.11's table of special addresses, which
counts them global: SRv6 segment identifiers (5f00::/16, RFC 9602), the IPv6 documentation prefix
3fff::/20 (RFC 9637) and the deprecated 6to4 relay anycast 192.88.99.0/24 (RFC 7526), in every form
that carries it. Their neighbours stay public.

Found by an outside review: `is_public` let all three through, so a webhook URL naming one was
accepted."""

import ipaddress

import pytest
from rest_framework.exceptions import ValidationError

from webhooks import services, transport
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

INSIDE = [
    "5f00::1",
    "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "3fff::1",
    "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
    "192.88.99.0",
    "192.88.99.1",
    "192.88.99.255",
    "::ffff:192.88.99.1",
    "64:ff9b::c058:6301",
    "2002:c058:6301::1",
]
NEIGHBOURS = ["5eff:ffff::1", "5f01::1", "3ffe:ffff::1", "3fff:1000::1", "192.88.98.255", "192.88.100.0"]


@pytest.mark.parametrize("address", INSIDE)
def test_an_address_of_the_ranges_is_not_public(address):
    assert not transport.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NEIGHBOURS)
def test_their_neighbours_stay_public(address):
    assert transport.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", ["http://[5f00::1]/hook", "http://[3fff::1]/hook", "http://192.88.99.1/hook"])
def test_a_webhook_url_naming_one_is_refused(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    with pytest.raises(ValidationError) as refused:
        services.create_subscription(actor="test", url=url, event_types=["approval.*"])

    assert "non-public" in str(refused.value.detail["url"][0])
    assert not WebhookSubscription.objects.exists()
