"""An open audit stream ends once its token would be refused (revoked or deleted): no event written
after that reaches it (found by an outside review: a revoked token kept streaming for up to
AUDIT_STREAM_MAX_SECONDS). The console's stream: tests/dashboard/test_live_stream_ends_with_the_right.py."""

import time

import pytest

from orchestrator.identity import tokens
from orchestrator.identity.principal import Principal
from sessions.services import create_session

FINANCE = Principal(subject="token:writer", role="finance")
# Committed events only: a stream shows what has committed, so these tests commit.
pytestmark = pytest.mark.django_db(transaction=True)
# Far beyond the few polls a stream needs to notice, far below AUDIT_STREAM_MAX_SECONDS below.
NOTICED_WITHIN_SECONDS = 10


@pytest.fixture(autouse=True)
def fast_stream(settings):
    settings.AUDIT_STREAM_POLL_SECONDS = 0.05
    settings.AUDIT_STREAM_HEARTBEAT_SECONDS = 0.05
    settings.AUDIT_STREAM_MAX_SECONDS = 30


def open_stream(client, path):
    response = client.get(path, HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200, response.content
    chunks = iter(response.streaming_content)
    assert next(chunks).startswith(b"retry: 1000\n: stream open")
    return response, chunks


def first_event(response, chunks):
    """The next event the stream sends; the stream is closed after it."""
    try:
        return next(chunk for chunk in chunks if chunk.startswith(b"id:"))
    finally:
        response.close()


def rest_of(response, chunks):
    """Everything the stream still sends until it ends, which must be soon, not at its time bound."""
    started = time.monotonic()
    try:
        sent = b"".join(chunks)
    finally:
        response.close()
    assert time.monotonic() - started < NOTICED_WITHIN_SECONDS
    return sent


def a_finance_event():
    create_session(principal=FINANCE, role="finance", trace_id="after-the-right-went")


def test_a_stream_open_while_its_token_is_revoked_ends_and_sends_nothing_written_after(finance):
    response, chunks = open_stream(finance, "/api/v1/audit/stream")

    tokens.revoke_token(actor="user:admin", token_id=finance.token.pk)
    a_finance_event()
    sent = rest_of(response, chunks)

    assert b"after-the-right-went" not in sent
    assert b"data:" not in sent


def test_a_stream_open_while_its_token_is_deleted_ends(finance):
    response, chunks = open_stream(finance, "/api/v1/audit/stream")

    tokens.delete_token(actor="user:admin", token_id=finance.token.pk)
    a_finance_event()

    assert b"after-the-right-went" not in rest_of(response, chunks)


def test_a_live_token_keeps_its_stream_and_gets_the_event(finance):
    response, chunks = open_stream(finance, "/api/v1/audit/stream")

    a_finance_event()

    assert b"after-the-right-went" in first_event(response, chunks)


def test_a_credential_whose_check_refuses_instead_of_answering_no_one_stands_for_no_one(monkeypatch, finance):
    # An expired JWT makes the OIDC check raise (401) rather than answer None (found by an outside
    # review: the stream's generator raised, and the answer ended as an aborted chunked response).
    from rest_framework.exceptions import AuthenticationFailed

    from orchestrator.identity import authentication

    def refuses(raw):
        raise AuthenticationFailed("expired")

    monkeypatch.setattr(authentication.oidc, "principal_for_jwt", refuses)

    assert authentication.still_stands_for("eyJ.expired.jwt", FINANCE) is False
