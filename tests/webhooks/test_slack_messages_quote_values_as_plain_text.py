"""A Slack message quotes every value it carries (an actor, a role, a decision, a target) as plain
text: nothing in them can mention a channel, make a link or dress the message up; the approval's
own link is the only link.

Found: `_slack_message` wrote the values into Slack mrkdwn unescaped (`Decision: {decision} by
{actor}`), so an actor named `oidc:<!channel> *URGENT* <https://evil.example|Open approval>` became
a channel-wide mention, bold text and a link to another site under the product's own words."""

import pytest

from audit import services as audit
from webhooks import services
from webhooks.models import WebhookFormat, WebhookSubscription

pytestmark = pytest.mark.django_db

HOSTILE_ACTOR = "oidc:<!channel> *URGENT* <https://evil.example|Open approval>"
APPROVAL_ID = "0b5c3c52-8f0e-4a53-9a36-0d4f3c1f7e21"


def slack_message(*, actor=HOSTILE_ACTOR, metadata=None, target_type="approval", target_id=APPROVAL_ID):
    event = audit.record(
        event_type="approval.decided",
        actor=actor,
        role="finance",
        trace_id="",
        target_type=target_type,
        target_id=target_id,
        metadata=metadata or {"decision": "approved", "approver_role": "manager"},
    )
    event.refresh_from_db()
    return services.payload_for(WebhookSubscription(format=WebhookFormat.SLACK), event)


def every_mrkdwn_text(message):
    return [message["text"]] + [block["text"]["text"] for block in message["blocks"] if "text" in block]


def test_an_actor_cannot_mention_a_channel_or_make_a_link(settings):
    settings.PUBLIC_BASE_URL = "https://orchestrator.example.com"

    message = slack_message()

    for text in every_mrkdwn_text(message):
        assert "<" not in text and ">" not in text, text
    section = message["blocks"][0]["text"]["text"]
    assert (
        "Decision: `approved` by `oidc:&lt;!channel&gt; *URGENT* &lt;https://evil.example|Open approval&gt;`"
        in section.splitlines()
    )
    link = f"https://orchestrator.example.com/dashboard/approvals/{APPROVAL_ID}/"
    assert message["text"] == f"Approval decided: {link}"
    assert message["blocks"][1]["elements"][0]["url"] == link


def test_a_value_cannot_end_its_code_span_or_add_a_line():
    message = slack_message(
        actor="user:a`*b*`",
        metadata={
            "decision": "approved\n*Approved by the CFO*",
            "approver_role": "man`_x_`ager",
            "expires_at": "soon & <!here>",
        },
    )

    lines = message["blocks"][0]["text"]["text"].splitlines()
    assert lines[:4] == [
        "*Approval decided*",
        "Approver role: `man_x_ager`",
        "Decision: `approved *Approved by the CFO*` by `user:a*b*`",
        "Decide before: `soon &amp; &lt;!here&gt;`",
    ]
    assert lines[4].startswith(f"`approval` `{APPROVAL_ID}` (event ")
    assert len(lines) == 5


def test_a_target_without_a_link_is_quoted_in_the_fallback_text_too():
    message = slack_message(target_type="task", target_id="<!everyone>")

    assert message["text"] == "Approval decided: `task` `&lt;!everyone&gt;`"
    assert len(message["blocks"]) == 1
