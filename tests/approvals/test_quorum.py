"""Quorum: N approve votes from N distinct principals decide; one reject rejects; decided once."""

import threading

import pytest
from django.db import connection

from approvals.models import Approval, ApprovalVote
from audit.models import AuditEvent
from routing.models import Task


@pytest.fixture
def request_quorum(route, finance):
    def make(required, **fields):
        task = route()
        response = finance.post(
            "/api/v1/approvals",
            {"task_id": task["task_id"], "approver_role": "manager", "required_approvals": required, **fields},
            format="json",
        )
        assert response.status_code == 201, response.content
        return task["task_id"], response.json()

    return make


def decide(agent, approval_id, decision):
    return agent.post(f"/api/v1/approvals/{approval_id}/decision", {"decision": decision}, format="json")


def events(approval_id):
    return list(AuditEvent.objects.filter(target_id=approval_id).order_by("id").values_list("event_type", "actor"))


def test_two_distinct_managers_must_approve(request_quorum, make_agent):
    task_id, approval = request_quorum(2)
    first, second = make_agent("manager", name="ann"), make_agent("manager", name="bob")
    assert approval["required_approvals"] == 2

    one = decide(first, approval["approval_id"], "approve")
    assert (one.status_code, one.json()["status"]) == (200, "pending")
    assert Task.objects.get(pk=task_id).status == "awaiting_approval"
    again = decide(first, approval["approval_id"], "approve")
    assert again.status_code == 409
    assert "already voted" in again.json()["detail"]

    two = decide(second, approval["approval_id"], "approve")

    assert (two.status_code, two.json()["status"], two.json()["decided_by"]) == (200, "approved", second.token.subject)
    assert Task.objects.get(pk=task_id).status == "pending"
    assert events(approval["approval_id"]) == [
        ("approval.requested", approval["requested_by"]),
        ("approval.voted", first.token.subject),
        ("approval.voted", second.token.subject),
        ("approval.decided", second.token.subject),
    ]
    assert decide(make_agent("manager", name="cy"), approval["approval_id"], "approve").status_code == 409


def test_one_rejection_rejects_however_many_approved(request_quorum, make_agent):
    task_id, approval = request_quorum(3)
    decide(make_agent("manager", name="ann"), approval["approval_id"], "approve")

    rejected = decide(make_agent("manager", name="bob"), approval["approval_id"], "reject")

    assert rejected.json()["status"] == "rejected"
    assert Task.objects.get(pk=task_id).status == "cancelled"
    assert [e for e, _ in events(approval["approval_id"])] == [
        "approval.requested",
        "approval.voted",
        "approval.voted",
        "approval.decided",
    ]


def test_another_role_cannot_vote(request_quorum, engineering, make_agent):
    _, approval = request_quorum(2)

    assert decide(engineering, approval["approval_id"], "approve").status_code == 403  # sees its task, not the vote
    assert decide(make_agent("marketing"), approval["approval_id"], "approve").status_code == 404
    assert not ApprovalVote.objects.exists()


@pytest.mark.parametrize("required", [0, -1, 21, "two", None])
def test_a_bad_quorum_is_refused(route, finance, required):
    task = route()
    response = finance.post(
        "/api/v1/approvals",
        {"task_id": task["task_id"], "approver_role": "manager", "required_approvals": required},
        format="json",
    )
    assert response.status_code == 400
    assert response["content-type"].startswith("application/problem+json")
    assert Task.objects.get(pk=task["task_id"]).status == "pending"


@pytest.mark.django_db(transaction=True)
def test_the_last_votes_arriving_together_decide_once(request_quorum, make_agent):
    _, approval = request_quorum(2)
    voters = [make_agent("manager", name=f"m{n}") for n in range(4)]
    barrier = threading.Barrier(len(voters))
    answers = []

    def vote(agent):
        try:
            barrier.wait()
            answers.append(decide(agent, approval["approval_id"], "approve").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=vote, args=(agent,)) for agent in voters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [200, 200, 409, 409]
    assert Approval.objects.get(pk=approval["approval_id"]).status == "approved"
    assert AuditEvent.objects.filter(event_type="approval.decided").count() == 1
    assert ApprovalVote.objects.count() == 2
