"""import_json holds a session's task link to the API's rule: the task is one the session's role sends
or receives. A session record linking another roles' task is skipped, and so is a task record whose
roles an overwrite would move away from a session linking it (found by an outside review: both were
imported, and a manager agent read a finance-to-engineering task's id in its session)."""

import pytest

from routing.models import Task
from sessions.models import Session
from tests.jobs.import_records import run, session_record, task_record, write

pytestmark = pytest.mark.django_db


def test_a_session_linking_a_task_its_role_cannot_see_is_skipped(tmp_path):
    task = task_record(status="pending")
    session = session_record(role="manager", task_id=task["id"])

    out, err = run(write(tmp_path, {"tasks": [task], "sessions": [session]}))

    assert "sessions: 0 created" in out
    assert "which role 'manager' cannot see" in err
    assert not Session.objects.exists()


def test_a_session_linking_a_task_of_its_own_role_imports(tmp_path):
    task = task_record(status="pending")

    out, _ = run(write(tmp_path, {"tasks": [task], "sessions": [session_record(role="finance", task_id=task["id"])]}))

    assert "sessions: 1 created" in out


def test_an_overwrite_moving_a_linked_tasks_roles_away_from_its_session_is_skipped(tmp_path):
    task = task_record(status="pending")
    run(write(tmp_path, {"tasks": [task], "sessions": [session_record(role="finance", task_id=task["id"])]}))

    moved = {**task, "from_role": "marketing", "to_role": "support"}
    out, err = run(write(tmp_path, {"tasks": [moved]}, "moved.json"), "--overwrite")

    assert "tasks: 0 created, 0 updated" in out
    assert "cannot see" in err
    assert Task.objects.get(pk=task["id"]).from_role == "finance"
