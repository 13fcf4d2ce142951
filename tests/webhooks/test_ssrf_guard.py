"""The SSRF guard: webhook URLs that resolve inside are refused at creation and at delivery."""

import socket

import pytest
from django.core.management import CommandError, call_command
from rest_framework.exceptions import ValidationError

from audit import services as audit
from webhooks import services, transport
from webhooks.models import DeliveryAttempt, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8000/",
        "http://[::1]/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00:ec2::254]/",
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://192.0.0.192/",  # IETF protocol assignments (Oracle Cloud's metadata service)
        "http://192.0.0.100/",
        "http://[::ffff:192.0.0.192]/",
    ],
)
def test_inside_addresses_are_refused_when_private_networks_are_not_allowed(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    with pytest.raises(ValidationError) as refused:
        services.create_subscription(actor="test", url=url, event_types=["approval.*"])

    assert "url" in refused.value.detail
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "http://user:pw@example.com/", "http:///nohost", "http://[::1"]
)
def test_malformed_or_credentialed_urls_are_refused(url):
    with pytest.raises(ValidationError):
        services.create_subscription(actor="test", url=url, event_types=["approval.*"])


@pytest.mark.parametrize("patterns", [[], ["APPROVAL.*"], ["approval.*; drop"], ["x" * 65], "approval.*"])
def test_bad_event_patterns_are_refused(receiver, patterns):
    with pytest.raises(ValidationError):
        services.create_subscription(actor="test", url=receiver().url, event_types=patterns)


def test_delivery_checks_the_address_again_and_refuses_it(receiver, settings):
    rx = receiver()
    subscription = services.create_subscription(actor="test", url=rx.url, event_types=["probe.*"])
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    audit.record(event_type="probe.sent", actor="t", role="", trace_id="", target_type="t", target_id=1)

    services.deliver_webhooks()

    assert rx.requests == []
    attempt = DeliveryAttempt.objects.get(subscription=subscription)
    assert attempt.status == "gave_up"
    assert "non-public address" in attempt.error


def test_the_connection_goes_to_the_address_that_was_checked(receiver, monkeypatch):
    """DNS rebinding: the name is resolved once, checked, and that address is what is connected to;
    the HTTP client never resolves the name again (this name resolves nowhere but here)."""
    rx = receiver()
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def fake_dns(host, *args, **kwargs):
        if host == "hooks.rebind.test":
            lookups.append(host)
            return real_getaddrinfo("127.0.0.1", *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(transport.socket, "getaddrinfo", fake_dns)
    target = transport.resolve(f"http://hooks.rebind.test:{rx.port}/hooks?x=1", allow_private=True)

    response = transport.post(
        target, body=b"{}", headers={"content-type": "application/json", "webhook-id": "1"}, timeout=2
    )

    assert (target.address, target.path) == ("127.0.0.1", "/hooks?x=1")
    assert lookups == ["hooks.rebind.test"]
    assert response.status == 204
    assert rx.requests[0][0]["Host"] == f"hooks.rebind.test:{rx.port}"


def test_add_webhook_prints_the_secret_once_and_refuses_inside_urls(receiver, settings, capsys):
    rx = receiver()
    call_command("add_webhook", rx.url, "--events", "approval.*", "--role", "manager")

    subscription = WebhookSubscription.objects.get()
    out = capsys.readouterr().out
    assert subscription.secret.startswith("whsec_") and out.count(subscription.secret) == 1
    assert (subscription.event_types, subscription.role) == (["approval.*"], "manager")

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(CommandError, match="non-public"):
        call_command("add_webhook", "http://169.254.169.254/", "--events", "approval.*")
    with pytest.raises(CommandError, match="Unknown role"):
        settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
        call_command("add_webhook", rx.url, "--events", "approval.*", "--role", "nobody")


@pytest.mark.parametrize("url", ["http://example.com/a b", "http://example.com/\r\nX-Evil: 1", "http://exa\tmple.com/"])
def test_urls_with_whitespace_or_control_characters_are_refused(url):
    with pytest.raises(ValidationError, match="whitespace or control"):
        services.create_subscription(actor="test", url=url, event_types=["approval.*"])
