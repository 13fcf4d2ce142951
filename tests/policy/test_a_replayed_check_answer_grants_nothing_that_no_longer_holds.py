"""A tool check's stored answer is a permission for now, not the record of a write: its
Idempotency-Key replays it only while the role is not paused and the version that answered is still
the active one. Found by an outside review: an agent kept a key whose answer was allow, and replayed
it through a pause and past a profile that no longer lists the tool."""

import copy

import pytest

from tests.policy.conftest import FINANCE

pytestmark = pytest.mark.django_db

CHECK = {"tool": "pay_invoice", "arguments": {"invoice": "INV-1", "amount": 900}}


def check(agent, key):
    return agent.post("/api/v1/policy/check", CHECK, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_stored_allow_replays_while_nothing_changed(finance, finance_profile):
    first = check(finance, "k-1")
    replayed = check(finance, "k-1")

    assert first.json()["decision"] == "allow"
    assert replayed.status_code == 200 and replayed["Idempotent-Replayed"] == "true"
    assert replayed.json() == first.json()


def test_a_stored_allow_is_not_replayed_while_the_role_is_paused(finance, staff, finance_profile):
    assert check(finance, "k-1").json()["decision"] == "allow"
    assert staff.post("/api/v1/roles/finance/pause", format="json").status_code == 200

    replayed = check(finance, "k-1")

    assert replayed.status_code == 423
    assert replayed.json()["type"].endswith("/role_paused")


def test_a_stored_allow_is_not_replayed_once_another_version_is_active(finance, finance_profile, load_profile):
    assert check(finance, "k-1").json()["version"] == 1
    tightened = copy.deepcopy(FINANCE)
    tightened["tools"] = ["fetch_status"]
    load_profile(tightened)

    replayed = check(finance, "k-1")
    fresh = check(finance, "k-2")

    assert replayed.status_code == 409
    assert replayed.json()["type"].endswith("/check_answer_outdated")
    assert replayed.json()["answered_version"] == 1 and replayed.json()["active_version"] == 2
    assert fresh.json()["decision"] == "deny" and fresh.json()["version"] == 2


def test_a_write_made_before_a_pause_is_still_replayed(finance, staff):
    """Writes keep their replay: the answer records what was done, and doing nothing new."""
    body = {"role": "finance"}
    created = finance.post("/api/v1/sessions", body, format="json", HTTP_IDEMPOTENCY_KEY="s-1")
    staff.post("/api/v1/roles/finance/pause", format="json")

    replayed = finance.post("/api/v1/sessions", body, format="json", HTTP_IDEMPOTENCY_KEY="s-1")

    assert replayed.status_code == 201 and replayed.json() == created.json()
