"""Behind TRUSTED_PROXY_COUNT proxies that append to X-Forwarded-For, a password sign-in is counted
under the address the outermost proxy saw, so one guesser no longer locks a username out for every
client of the proxy (all of whom shared its address). What a client writes into the header itself is
never read."""

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client, override_settings

from audit.models import AuditEvent
from tests.auth.password_sign_ins import fail_to_the_limit, sign_in

pytestmark = pytest.mark.django_db
PROXY = "10.0.0.2"


def through_the_proxy(forwarded_for):
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_a_guesser_behind_the_proxy_locks_out_only_itself(root):
    fail_to_the_limit(through_the_proxy("198.51.100.7"))

    assert sign_in(through_the_proxy("198.51.100.7"), "the-right-one").status_code == 429
    assert sign_in(through_the_proxy("198.51.100.8"), "the-right-one").status_code == 302
    [event] = AuditEvent.objects.filter(event_type="person.locked_out")
    assert event.metadata["address"] == "198.51.100.7"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_what_the_client_wrote_before_the_proxys_entry_is_not_read(root):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(through_the_proxy(f"192.0.2.{attempt}, 198.51.100.7"), f"wrong-{attempt}")

    assert sign_in(through_the_proxy("203.0.113.1, 198.51.100.7"), "the-right-one").status_code == 429
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["198.51.100.7"]


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_with_two_proxies_the_outer_ones_entry_counts(root):
    fail_to_the_limit(through_the_proxy("192.0.2.1, 198.51.100.7, 10.0.0.1"))

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["198.51.100.7"]


@pytest.mark.parametrize("forwarded_for", ["", "not-an-address", "198.51.100.7:443", "198.51.100.7, "])
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_a_missing_or_malformed_entry_counts_under_the_connections_address(root, forwarded_for):
    sign_in(through_the_proxy(forwarded_for), "wrong")

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [PROXY]


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_fewer_entries_than_proxies_count_under_the_connections_address(root):
    sign_in(through_the_proxy("198.51.100.7"), "wrong")

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [PROXY]


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_ipv6_is_counted_per_64_network_in_one_spelling(root):
    # Anyone given one IPv6 network holds 2^64 addresses: counted per address, the limit was gone.
    for address in ["2001:DB8:0:0::1", "2001:db8::1", "2001:db8::ffff:1", "2001:db8:0:0:abcd::9"]:
        sign_in(through_the_proxy(address), "wrong")
    sign_in(through_the_proxy("2001:db8:0:1::1"), "wrong")

    assert sorted(AccessAttempt.objects.values_list("ip_address", "failures_since_start")) == [
        ("2001:db8:0:1::", 1),
        ("2001:db8::", 4),
    ]


@pytest.mark.parametrize(
    ("written", "client"),
    [
        ("::ffff:198.51.100.7", "198.51.100.7"),  # IPv4-mapped
        ("64:ff9b::198.51.100.7", "198.51.100.7"),  # NAT64's well-known prefix
        ("64:ff9b::cb00:7101", "203.0.113.1"),
        ("2002:c633:6407::1", "198.51.100.7"),  # 6to4
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # Teredo, the client's address inverted
    ],
)
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_an_ipv6_address_carrying_an_ipv4_clients_is_counted_as_that_client(root, written, client):
    # Per /64, every IPv4 client behind one NAT64 translator shared a bucket (an outside review).
    sign_in(through_the_proxy(written), "wrong")
    sign_in(through_the_proxy(client), "wrong")

    assert list(AccessAttempt.objects.values_list("ip_address", "failures_since_start")) == [(client, 2)]


def test_the_connections_own_link_local_address_is_counted_without_its_zone(root):
    sign_in(Client(REMOTE_ADDR="fe80::1%eth0"), "wrong")
    sign_in(Client(REMOTE_ADDR="fe80::2%eth1"), "wrong")

    assert list(AccessAttempt.objects.values_list("ip_address", "failures_since_start")) == [("fe80::", 2)]


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_an_ipv6_lockout_event_names_its_network(root):
    fail_to_the_limit(through_the_proxy("2001:db8:1:2::abcd"))

    [event] = AuditEvent.objects.filter(event_type="person.locked_out")
    assert event.metadata["address"] == "2001:db8:1:2::/64"


@pytest.mark.parametrize("forwarded_for", ["fe80::1%eth0", "fe80::1%z9", "2001:db8::1%" + "x" * 200])
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_an_address_with_a_zone_id_counts_under_the_connections_address(root, forwarded_for):
    response = sign_in(through_the_proxy(forwarded_for), "wrong")

    assert response.status_code == 200
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [PROXY]


@pytest.mark.parametrize("proxies", [0, 1])
def test_a_connection_without_an_address_is_still_limited(root, proxies):
    # gunicorn on a unix socket sets REMOTE_ADDR to "": axes stored NULL, which matched no earlier
    # failure, and nobody was ever locked out (an outside review).
    with override_settings(TRUSTED_PROXY_COUNT=proxies):
        for attempt in range(settings.AXES_FAILURE_LIMIT):
            sign_in(Client(REMOTE_ADDR="", HTTP_X_FORWARDED_FOR="198.51.100.7:51234"), f"wrong-{attempt}")

        refused = sign_in(Client(REMOTE_ADDR=""), "the-right-one")

    assert refused.status_code == 429
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["0.0.0.0"]


def test_without_trusted_proxies_the_header_is_not_read(root):
    fail_to_the_limit(through_the_proxy("198.51.100.7"))

    assert sign_in(through_the_proxy("198.51.100.8"), "the-right-one").status_code == 429
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [PROXY]
