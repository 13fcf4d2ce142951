import pytest


@pytest.fixture
def engineering(make_agent):
    return make_agent("engineering")


@pytest.fixture
def route(finance):
    """Route a task as finance (or as `agent`) through the API and return the response body."""

    def send(to_role="engineering", *, agent=None, **fields):
        response = (agent or finance).post(
            "/api/v1/tasks/route", {"type": "invoice.check", "to_role": to_role, "payload": {"n": 1}, **fields}, format="json"
        )
        assert response.status_code == 202, response.content
        return response.json()

    return send
