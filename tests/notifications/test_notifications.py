"""Notifications: sent to a role, listed unacknowledged by that role's agents, acked once."""

from audit.models import AuditEvent


def send(agent, **fields):
    response = agent.post(
        "/api/v1/notifications", {"to_role": "manager", "message": "budget over", **fields}, format="json"
    )
    assert response.status_code == 202, response.content
    return response.json()


def test_sending_answers_202_and_records_a_sent_event(finance):
    body = send(finance, trace_id="trace-n1")

    assert (body["from_role"], body["to_role"], body["acked_at"]) == ("finance", "manager", None)
    event = AuditEvent.objects.get(target_id=body["notification_id"])
    assert (event.event_type, event.trace_id) == ("notification.sent", "trace-n1")


def test_the_target_role_lists_its_unacked_notifications_oldest_first(finance, manager, make_agent):
    first, second = send(finance), send(finance)
    send(finance, to_role="support")

    listed = manager.get("/api/v1/notifications").json()["notifications"]

    assert [n["notification_id"] for n in listed] == [first["notification_id"], second["notification_id"]]
    assert make_agent("engineering").get("/api/v1/notifications").json()["notifications"] == []


def test_an_acked_notification_leaves_the_list_and_a_second_ack_changes_nothing(finance, manager):
    note = send(finance)

    acked = manager.post(f"/api/v1/notifications/{note['notification_id']}/ack")
    again = manager.post(f"/api/v1/notifications/{note['notification_id']}/ack")

    assert acked.status_code == 200 and acked.json()["acked_by"] == manager.token.subject
    assert again.json()["acked_at"] == acked.json()["acked_at"]
    assert manager.get("/api/v1/notifications").json()["notifications"] == []
    assert AuditEvent.objects.filter(event_type="notification.acked").count() == 1


def test_only_the_target_role_may_ack(finance):
    note = send(finance)

    assert finance.post(f"/api/v1/notifications/{note['notification_id']}/ack").status_code == 404


def test_an_agent_may_not_read_another_roles_notifications_but_staff_may(finance, staff):
    send(finance)

    assert finance.get("/api/v1/notifications?to_role=manager").status_code == 403
    assert len(staff.get("/api/v1/notifications?to_role=manager").json()["notifications"]) == 1


def test_a_role_that_does_not_exist_filters_to_nothing_for_staff_and_is_not_an_agents_to_read(finance, staff):
    send(finance)

    listed = staff.get("/api/v1/notifications?to_role=no-such-role")
    assert listed.status_code == 200, listed.content
    assert listed.json()["notifications"] == []
    assert finance.get("/api/v1/notifications?to_role=no-such-role").status_code == 403


def test_a_notification_may_point_at_a_session_the_sender_can_see(finance, manager):
    own = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    foreign = manager.post("/api/v1/sessions", {"role": "manager"}, format="json").json()["session_id"]

    assert send(finance, session_id=own)["session_id"] == own
    response = finance.post(
        "/api/v1/notifications", {"to_role": "manager", "message": "x", "session_id": foreign}, format="json"
    )
    assert response.status_code == 400
