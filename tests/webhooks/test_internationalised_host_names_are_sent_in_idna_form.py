"""A webhook URL with an internationalised host name is resolved and sent under its IDNA name
(xn--...), in the Host header too; a name IDNA cannot encode, or would encode into another domain,
is refused when the subscription is created, not at every delivery.

Found: `http://пример.example:PORT/hooks` passed creation and the SSRF guard, but every attempt failed
with UnicodeEncodeError (the Host header is latin-1) and was retried for a day, holding back every
later event, then given up, and the subscription disabled; `http://bücher.example/` was delivered
with a raw latin-1 Host header instead of `xn--bcher-kva.example`."""

import socket

import pytest
from rest_framework.exceptions import ValidationError

from audit import services as audit
from webhooks import services, transport
from webhooks.models import DeliveryAttempt, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def names_asked(monkeypatch):
    """DNS for the tests: every name under .example is the loopback receiver; the names asked are kept."""
    asked = []

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".example"):
            asked.append(host)
            return REAL_GETADDRINFO("127.0.0.1", port, *args, **kwargs)
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(transport.socket, "getaddrinfo", getaddrinfo)
    return asked


def deliver_one_event(receiver, host):
    rx = receiver()
    subscription = services.create_subscription(
        actor="test", url=f"http://{host}:{rx.port}/hooks", event_types=["approval.*"]
    )
    rx.secret = subscription.secret
    audit.record(
        event_type="approval.requested", actor="t", role="", trace_id="", target_type="t", target_id=1, metadata={}
    )
    services.deliver_subscription(subscription_id=subscription.pk)
    return rx, subscription


@pytest.mark.parametrize(
    "host, idna",
    [("пример.example", "xn--e1afmkfd.example"), ("bücher.example", "xn--bcher-kva.example")],
)
def test_an_internationalised_host_is_delivered_under_its_idna_name(receiver, names_asked, host, idna):
    rx, subscription = deliver_one_event(receiver, host)

    [(headers, _)] = rx.requests
    assert headers["Host"] == f"{idna}:{rx.port}"
    assert len(rx.accepted) == 1
    assert set(names_asked) == {idna}
    assert [a.status for a in DeliveryAttempt.objects.filter(subscription=subscription)] == ["delivered"]


def test_an_ascii_host_is_sent_as_it_was_given(receiver, names_asked):
    rx, _ = deliver_one_event(receiver, "hooks.example")

    [(headers, _)] = rx.requests
    assert headers["Host"] == f"hooks.example:{rx.port}"


@pytest.mark.parametrize(
    "host",
    [
        "x" * 64 + "ü.example",  # a label longer than DNS allows
        "bücher..example",  # an empty label
        "straße.example",  # IDNA 2003 makes it strasse.example, another domain
        "ab\u200dcü.example",  # a zero-width joiner IDNA 2003 drops
        "ς.example",
    ],
)
def test_a_host_idna_cannot_encode_as_meant_is_refused_at_creation(names_asked, host):
    with pytest.raises(ValidationError) as refused:
        services.create_subscription(actor="test", url=f"http://{host}/hooks", event_types=["approval.*"])

    message = " ".join(str(m) for m in refused.value.detail["url"])
    assert "xn--" in message or "internationalised" in message
    assert not WebhookSubscription.objects.exists()
    assert names_asked == []
