"""If-Match is a list of entity tags (RFC 9110 section 13.1.1): a write goes ahead when any of them is
the session's current one, weak or strong, and is refused (412) when none is or the header is not a
list of tags (found by an outside review: a list holding the current tag answered 412)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    return session_id, finance.get(f"/api/v1/sessions/{session_id}")["ETag"]


def patch(agent, session_id, if_match):
    return agent.patch(f"/api/v1/sessions/{session_id}", {"metadata": {"n": 1}}, format="json", HTTP_IF_MATCH=if_match)


@pytest.mark.parametrize(
    "header",
    ['W/"0", {etag}', '{etag}, W/"0"', 'W/"0",{etag}', "{strong}", '"0", *', "*"],
    ids=["current-last", "current-first", "no-space", "strong-form", "star-in-a-list", "star"],
)
def test_a_list_naming_the_current_tag_lets_the_write_through(finance, session, header):
    session_id, etag = session

    response = patch(finance, session_id, header.format(etag=etag, strong=etag.removeprefix("W/")))

    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "header",
    ['W/"0"', 'W/"0", W/"1"', "", " , ", "{etag} trailing", "garbage, {etag}", "{bare}"],
    ids=["stale", "stale-list", "empty", "commas-only", "trailing-text", "garbage-member", "unquoted"],
)
def test_a_list_without_the_current_tag_or_unreadable_is_refused(finance, session, header):
    session_id, etag = session

    response = patch(finance, session_id, header.format(etag=etag, bare=etag.removeprefix("W/").strip('"')))

    assert response.status_code == 412, response.content
    assert finance.get(f"/api/v1/sessions/{session_id}").json()["metadata"] == {}
