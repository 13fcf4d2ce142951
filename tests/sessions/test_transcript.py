"""A session's transcript: ordered messages appended and listed through the API."""

from audit.models import AuditEvent


def new_session(client):
    return client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]


def test_appended_messages_are_listed_in_order_with_their_authors(finance):
    session_id = new_session(finance)
    for text in ["first", "second", "third"]:
        response = finance.post(f"/api/v1/sessions/{session_id}/messages", {"content": text}, format="json")
        assert response.status_code == 201

    body = finance.get(f"/api/v1/sessions/{session_id}/messages").json()

    assert [m["content"] for m in body["messages"]] == ["first", "second", "third"]
    assert {m["author_role"] for m in body["messages"]} == {"finance"}
    assert body["next_after"] is None


def test_the_transcript_pages_with_after_and_limit(finance):
    session_id = new_session(finance)
    for number in range(5):
        finance.post(f"/api/v1/sessions/{session_id}/messages", {"content": str(number)}, format="json")

    first = finance.get(f"/api/v1/sessions/{session_id}/messages?limit=2").json()
    rest = finance.get(f"/api/v1/sessions/{session_id}/messages?after={first['next_after']}").json()

    assert [m["content"] for m in first["messages"]] == ["0", "1"]
    assert [m["content"] for m in rest["messages"]] == ["2", "3", "4"]


def test_appending_is_audited_without_copying_the_content(finance):
    session_id = new_session(finance)

    finance.post(f"/api/v1/sessions/{session_id}/messages", {"content": "secret plan"}, format="json")

    event = AuditEvent.objects.get(target_id=session_id, event_type="session.message_appended")
    assert event.metadata["length"] == len("secret plan")
    assert "secret plan" not in str(event.metadata)


def test_a_terminal_session_refuses_new_messages(finance):
    session_id = new_session(finance)
    finance.patch(f"/api/v1/sessions/{session_id}", {"status": "expired"}, format="json")

    response = finance.post(f"/api/v1/sessions/{session_id}/messages", {"content": "late"}, format="json")

    assert response.status_code == 409
    assert response.json()["current_status"] == "expired"


def test_a_message_id_beyond_64_bits_in_after_is_a_400_as_the_schema_says(finance):
    session_id = new_session(finance)

    largest = finance.get(f"/api/v1/sessions/{session_id}/messages?after={2**63 - 1}")
    beyond = finance.get(f"/api/v1/sessions/{session_id}/messages?after={2**63}")

    assert largest.status_code == 200
    assert beyond.status_code == 400
    assert "after" in beyond.json()["errors"]
