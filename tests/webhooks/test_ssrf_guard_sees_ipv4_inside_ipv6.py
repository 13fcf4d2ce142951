"""The SSRF guard looks through IPv6 forms that carry an IPv4 address (NAT64, 6to4, IPv4-compatible,
SIIT) and the deprecated site-local range: an inside address wrapped in IPv6 is still inside."""

import ipaddress

import pytest
from rest_framework.exceptions import ValidationError

from webhooks import services, transport
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

WRAPPED_INSIDE = [
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (a DNS64 network translates it)
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::a00:1",  # RFC 8215 local-use NAT64 prefix
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "::127.0.0.1",  # IPv4-compatible
    "::10.0.0.1",
    "::ffff:0:a9fe:a9fe",  # SIIT (RFC 6145) translated 169.254.169.254
    "fec0::1",  # site-local (deprecated, still routed by some stacks)
]


@pytest.mark.parametrize("address", WRAPPED_INSIDE)
def test_an_inside_ipv4_address_wrapped_in_ipv6_is_not_public(address):
    assert not transport.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", WRAPPED_INSIDE)
def test_a_webhook_url_naming_a_wrapped_inside_address_is_refused(settings, address):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    with pytest.raises(ValidationError):
        services.create_subscription(actor="test", url=f"http://[{address}]/hooks", event_types=["approval.*"])

    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_stay_public(address):
    assert transport.is_public(ipaddress.ip_address(address))
