"""The SSRF guard refuses Azure's WireServer, 168.63.129.16, in every form, as it refuses Oracle
Cloud's metadata address.

Found: the address is public (Python's table counts it global), but every Azure VM reaches it, and
it serves the VM's provisioning data and extension settings: a webhook URL naming it (or
::ffff:168.63.129.16, or a name resolving to it) was accepted."""

import ipaddress

import pytest
from rest_framework.exceptions import ValidationError

from webhooks import services, transport
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

WIRESERVER = ["168.63.129.16", "::ffff:168.63.129.16", "64:ff9b::a83f:8110"]


@pytest.mark.parametrize("address", WIRESERVER)
def test_the_wireserver_address_is_not_public(address):
    assert not transport.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url", ["http://168.63.129.16/machine", "http://[::ffff:168.63.129.16]/", "http://2822734096/"]
)
def test_a_webhook_url_naming_the_wireserver_is_refused(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    with pytest.raises(ValidationError) as refused:
        services.create_subscription(actor="test", url=url, event_types=["approval.*"])

    assert "non-public" in str(refused.value.detail["url"][0])
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize("address", ["168.63.129.15", "168.63.129.17"])
def test_its_neighbours_stay_public(address):
    assert transport.is_public(ipaddress.ip_address(address))
