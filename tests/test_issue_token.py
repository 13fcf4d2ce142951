"""`manage.py issue_token --role R` prints a working token alone on its last line."""

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from orchestrator.identity.models import ApiToken, hash_token


def issue(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("issue_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines()[-1]


def test_the_printed_token_authenticates_as_the_role(db):
    raw = issue("--role", "finance")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    created = client.post("/api/v1/sessions", {"role": "finance"}, format="json")

    assert created.status_code == 201
    assert client.post("/api/v1/sessions", {"role": "manager"}, format="json").status_code == 403


def test_only_a_hash_of_the_token_is_stored(db):
    raw = issue("--role", "finance", "--name", "ledger-bot")

    token = ApiToken.objects.get(name="ledger-bot")
    assert token.token_hash == hash_token(raw)
    assert raw not in {str(value) for value in ApiToken.objects.values().get(pk=token.pk).values()}


def test_a_staff_token_sees_every_role(db):
    raw = issue("--role", "operations", "--staff")

    assert ApiToken.objects.get(token_hash=hash_token(raw)).is_staff


def test_an_unknown_role_is_refused(db):
    with pytest.raises(CommandError, match="Unknown role"):
        issue("--role", "astrology")
