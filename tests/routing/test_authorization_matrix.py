"""Every task, approval and notification endpoint: the right role succeeds, staff succeed, a wrong
role gets 404 (cannot see it) or 403 (sees it, may not act), and no token gets 401."""

from dataclasses import dataclass

import pytest

from approvals.models import Approval
from audit.models import AuditEvent
from notifications.models import Notification
from routing.models import Task


@dataclass
class World:
    """finance sent `pending` and `claimed` (claimed by engineering under `lease`) to engineering; `gated`
    waits for manager."""

    pending: str
    claimed: str
    lease: str
    gated: str
    approval: str
    notification: str


@pytest.fixture
def agents(make_agent):
    return {role: make_agent(role) for role in ("finance", "engineering", "manager", "marketing")}


@pytest.fixture
def world(agents):
    finance, engineering = agents["finance"], agents["engineering"]

    def route(**extra):
        body = {"type": "t", "to_role": "engineering", "payload": {}, **extra}
        return finance.post("/api/v1/tasks/route", body, format="json").json()

    pending, claimed, gated = route(), route(), route(requires_approval=True, approver_role="manager")
    lease = engineering.post(f"/api/v1/tasks/{claimed['task_id']}/claim").json()["lease_token"]
    note = finance.post("/api/v1/notifications", {"to_role": "manager", "message": "hi"}, format="json").json()
    return World(
        pending["task_id"], claimed["task_id"], lease, gated["task_id"], gated["approval_id"], note["notification_id"]
    )


# name: (method, path, body, right role, success status, {wrong role: refusal status})
ENDPOINTS = {
    "route": (
        "post",
        "/api/v1/tasks/route",
        {"type": "t", "to_role": "engineering", "from_role": "finance"},
        "finance",
        202,
        {"marketing": 403},
    ),
    "read task": ("get", "/api/v1/tasks/{pending}", None, "engineering", 200, {"marketing": 404}),
    "claim": ("post", "/api/v1/tasks/{pending}/claim", None, "engineering", 200, {"finance": 403, "marketing": 404}),
    "complete": (
        "post",
        "/api/v1/tasks/{claimed}/complete",
        {"result": 1, "lease_token": "{lease}"},
        "engineering",
        200,
        {"finance": 403, "marketing": 404},
    ),
    "fail": (
        "post",
        "/api/v1/tasks/{claimed}/fail",
        {"error": "x", "lease_token": "{lease}"},
        "engineering",
        200,
        {"finance": 403, "marketing": 404},
    ),
    "heartbeat": (
        "post",
        "/api/v1/tasks/{claimed}/heartbeat",
        {"lease_token": "{lease}"},
        "engineering",
        200,
        {"finance": 403, "marketing": 404},
    ),
    "release": (
        "post",
        "/api/v1/tasks/{claimed}/release",
        {"lease_token": "{lease}"},
        "engineering",
        200,
        {"finance": 403, "marketing": 404},
    ),
    "cancel": ("post", "/api/v1/tasks/{pending}/cancel", None, "finance", 200, {"engineering": 403, "marketing": 404}),
    "claim next": (
        "post",
        "/api/v1/tasks/claim-next?to_role=engineering",
        None,
        "engineering",
        200,
        {"marketing": 403},
    ),
    "request approval": (
        "post",
        "/api/v1/approvals",
        {"task_id": "{pending}", "approver_role": "manager"},
        "finance",
        201,
        {"marketing": 404},
    ),
    "read approval": ("get", "/api/v1/approvals/{approval}", None, "manager", 200, {"marketing": 404}),
    "decide": (
        "post",
        "/api/v1/approvals/{approval}/decision",
        {"decision": "approve"},
        "manager",
        200,
        {"finance": 403, "marketing": 404},
    ),
    "notify": (
        "post",
        "/api/v1/notifications",
        {"to_role": "manager", "message": "m", "from_role": "finance"},
        "finance",
        202,
        {"marketing": 403},
    ),
    "list notifications": ("get", "/api/v1/notifications?to_role=manager", None, "manager", 200, {"finance": 403}),
    "ack": ("post", "/api/v1/notifications/{notification}/ack", None, "manager", 200, {"finance": 404}),
}
# Lists answer 200 to everyone; a wrong role just sees none of the others' objects.
LISTS = {
    "task list": ("/api/v1/tasks?to_role=engineering", "tasks", "engineering"),
    "approval queue": ("/api/v1/approvals?status=pending&approver_role=manager", "approvals", "manager"),
}


def call(client, world, name):
    method, path, body, *_ = ENDPOINTS[name]
    values = vars(world)
    path = path.format(**values)
    if body is not None:
        body = {key: value.format(**values) if isinstance(value, str) else value for key, value in body.items()}
    return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)


def state():
    return (
        sorted(Task.objects.values_list("id", "status", "claimed_by", "updated_at")),
        sorted(Approval.objects.values_list("id", "status", "updated_at")),
        sorted(Notification.objects.values_list("id", "acked_at")),
        AuditEvent.objects.count(),
    )


@pytest.mark.parametrize("name", ENDPOINTS)
def test_the_right_role_succeeds(agents, world, name):
    *_, role, success, _ = ENDPOINTS[name]

    response = call(agents[role], world, name)

    assert response.status_code == success, response.content


@pytest.mark.parametrize("name", ENDPOINTS)
def test_staff_succeed(staff, world, name):
    response = call(staff, world, name)

    assert response.status_code == ENDPOINTS[name][4], response.content


@pytest.mark.parametrize("name,role", [(name, role) for name, spec in ENDPOINTS.items() for role in spec[5]])
def test_a_wrong_role_is_refused_and_changes_nothing(agents, world, name, role):
    before = state()

    response = call(agents[role], world, name)

    assert response.status_code == ENDPOINTS[name][5][role], response.content
    assert response["Content-Type"] == "application/problem+json"
    assert state() == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_no_token_gets_401(anonymous, world, name):
    before = state()

    response = call(anonymous, world, name)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert state() == before


@pytest.mark.parametrize("name", LISTS)
def test_lists_show_the_right_role_its_objects_and_a_wrong_role_none(agents, world, anonymous, name):
    path, key, role = LISTS[name]

    mine = agents[role].get(path).json()[key]
    others = agents["marketing"].get(path).json()[key]

    assert mine and others == []
    assert anonymous.get(path).status_code == 401
