"""A token name no text column holds, a lone surrogate (what argv gives, under surrogateescape, for a
byte that is not UTF-8), is refused before anything is written: a ValidationError from the service,
a CommandError from `issue_token --name`.

Found by an outside review: it reached the database driver and came out as a raw UnicodeEncodeError."""

import pytest
from django.core.management import CommandError, call_command
from rest_framework.exceptions import ValidationError

from audit.models import AuditEvent
from orchestrator.identity import tokens
from orchestrator.identity.models import ApiToken

pytestmark = pytest.mark.django_db

NAME_FROM_A_NON_UTF8_ARGV = "bot\udcff"


def test_the_command_refuses_it_and_issues_nothing():
    with pytest.raises(CommandError, match="lone surrogates"):
        call_command("issue_token", role="finance", name=NAME_FROM_A_NON_UTF8_ARGV)

    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.filter(event_type="token.issued").exists()


def test_the_service_refuses_it_as_invalid_input():
    with pytest.raises(ValidationError):
        tokens.issue_token(actor="user:ada", role="finance", name=NAME_FROM_A_NON_UTF8_ARGV)

    assert not ApiToken.objects.exists()
