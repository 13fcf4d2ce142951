"""An `<type>.imported` event is read by the roles that see the record, as the API's own events of
the kind are: a task's from_role and to_role, an approval's approver_role and the role whose task it
holds, a notification's to_role and from_role, a session's role.

When import_json --overwrite moves a record to other roles (a session from finance to marketing, a
task to another to_role), the roles that saw it before read its old values and those that see it
now its new ones, neither the other's: the event filed under the new roles carries no `before`, and
one filed under the old roles carries the old values, so they still see that their record changed.
Before, the one event went to the new role only, `before` and all: marketing read finance's
metadata in the audit log. Found by an outside review."""

import pytest

from tests.jobs.import_records import approval_record, session_record, task_record
from transfer import services as transfer


def imported_events(agent, target_id):
    response = agent.get("/api/v1/audit", {"target_id": str(target_id)})
    assert response.status_code == 200, response.content
    return [event["metadata"] for event in response.json()["events"] if event["event_type"].endswith(".imported")]


def imported(data, *, overwrite=False):
    report = transfer.import_json(data=data, overwrite=overwrite)
    assert report.errors == []


@pytest.fixture
def marketing(make_agent):
    return make_agent("marketing")


def test_a_session_moved_to_another_role_shows_that_role_none_of_its_old_values(finance, marketing):
    session = session_record(role="finance", metadata={"salary_band": "F7"})
    imported({"sessions": [session]})

    imported({"sessions": [{**session, "role": "marketing", "metadata": {"campaign": "spring"}}]}, overwrite=True)

    [created, moved_away] = imported_events(finance, session["id"])[::-1]
    assert created["created"] is True
    assert moved_away["before"] == {"metadata": {"salary_band": "F7"}, "role": "finance"}
    assert "after" not in moved_away
    [moved_in] = imported_events(marketing, session["id"])
    assert moved_in["after"] == {"metadata": {"campaign": "spring"}, "role": "marketing"}
    assert "before" not in moved_in
    assert "F7" not in str(moved_in)


def test_a_task_sent_to_another_role_shows_the_new_receiver_none_of_its_old_payload(finance, engineering, marketing):
    task = task_record(status="pending", to_role="engineering", payload={"account": "E-1"})
    imported({"tasks": [task]})

    imported({"tasks": [{**task, "to_role": "marketing", "payload": {"account": "M-1"}}]}, overwrite=True)

    assert [event.get("before") for event in imported_events(engineering, task["id"])] == [
        {"payload": {"account": "E-1"}, "to_role": "engineering"},
        None,
    ]
    [moved_in] = imported_events(marketing, task["id"])
    assert "before" not in moved_in and "E-1" not in str(moved_in)
    # The sender saw it all along, and reads both.
    assert len(imported_events(finance, task["id"])) == 3


def test_an_overwrite_within_the_same_roles_is_one_event_with_before_and_after(finance):
    session = session_record(role="finance", metadata={"step": 1})
    imported({"sessions": [session]})

    imported({"sessions": [{**session, "metadata": {"step": 2}}]}, overwrite=True)

    [updated, _] = imported_events(finance, session["id"])
    assert (updated["before"], updated["after"]) == ({"metadata": {"step": 1}}, {"metadata": {"step": 2}})


def test_an_imported_approval_is_read_by_the_role_whose_task_it_holds(finance, manager, marketing):
    task = task_record(from_role="finance", to_role="engineering")
    approval = approval_record(task, approver_role="manager")

    imported({"tasks": [task], "approvals": [approval]})

    assert len(imported_events(manager, approval["id"])) == 1
    assert len(imported_events(finance, approval["id"])) == 1
    assert imported_events(marketing, approval["id"]) == []


def test_an_imported_notification_is_read_by_its_sender_too(finance, manager, marketing):
    notification = {
        "id": "3a0e7c52-6d43-4a38-9d35-2f9d6a1c0b11",
        "to_role": "manager",
        "from_role": "finance",
        "message": "budget ready",
        "trace_id": "trace-import",
        "created_by": "token:finance",
    }

    imported({"notifications": [notification]})

    assert len(imported_events(manager, notification["id"])) == 1
    assert len(imported_events(finance, notification["id"])) == 1
    assert imported_events(marketing, notification["id"]) == []


def test_an_approval_whose_task_changed_sender_shows_its_old_notes_to_the_old_sender_only(finance, marketing):
    # Its task is imported first, so the role that read the approval before is the task's sender as
    # it was when the run began, not as the task record just made it.
    task = task_record(from_role="finance", to_role="engineering")
    approval = approval_record(task, notes="finance-only: acquire ACME at 40M")
    imported({"tasks": [task], "approvals": [approval]})

    moved_task = {**task, "from_role": "marketing", "created_by": "token:marketing"}
    imported({"tasks": [moved_task], "approvals": [{**approval, "notes": "campaign"}]}, overwrite=True)

    seen_by_marketing = imported_events(marketing, approval["id"])
    assert "ACME" not in str(seen_by_marketing)
    assert [event.get("after") for event in seen_by_marketing] == [{"notes": "campaign"}]
    assert {"notes": "finance-only: acquire ACME at 40M"} in [
        event.get("before") for event in imported_events(finance, approval["id"])
    ]
