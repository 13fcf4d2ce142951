"""import_json validates every field as the API does, never overwrites a live record unless told
to, and never leaves a task waiting for an approval that was imported as already decided."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from approvals.models import Approval
from audit.models import AuditEvent
from routing.models import Task
from sessions.models import Session
from tests.jobs.import_records import run, session_record, write

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def at(minutes):
    return (T0 + timedelta(minutes=minutes)).isoformat()


def session(**fields):
    return session_record(**{"owner": "o", "created_at": at(0), "updated_at": at(0), **fields})


def task(**fields):
    return {
        "id": str(uuid.uuid4()),
        "type": "t",
        "from_role": "finance",
        "to_role": "manager",
        "trace_id": "t-1",
        "created_by": "o",
        "created_at": at(0),
        "updated_at": at(0),
        **fields,
    }


def nested(depth):
    value = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("kind", "record", "reason"),
    [
        ("tasks", task(trace_id="a/b"), "trace_id"),
        ("tasks", task(trace_id="x" * 129), "trace_id"),
        ("tasks", task(to_role="astrology"), "to_role: unknown role"),
        ("tasks", task(payload=[1]), "payload: expected an object"),
        ("tasks", task(payload=nested(40)), "deeper than 32"),
        ("sessions", session(role="astrology"), "role: unknown role"),
        ("sessions", session(metadata={"k\u0000": 1}), "U+0000"),
        ("sessions", session(metadata={"k": "v\u0000"}), "U+0000"),
        ("sessions", session(owner="o\u0000"), "U+0000"),
        ("sessions", session(metadata=nested(40)), "deeper than 32"),
        (
            "sessions",
            session(messages=[{"author_role": "astrology", "content": "x", "created_at": at(1)}]),
            "author_role",
        ),
        (
            "notifications",
            {
                "id": str(uuid.uuid4()),
                "to_role": "manager",
                "from_role": "finance",
                "message": "m",
                "trace_id": "bad trace",
                "created_by": "o",
                "created_at": at(0),
            },
            "trace_id",
        ),
    ],
)
def test_a_field_the_api_would_refuse_is_reported_and_nothing_written(db, tmp_path, kind, record, reason):
    out, err = run(write(tmp_path, {kind: [record]}))

    assert "1 skipped" in out
    assert f"{kind}[0]" in err and reason in err, err
    assert not Task.objects.exists() and not Session.objects.exists()


def test_an_integer_beyond_64_bits_is_refused_not_rounded(db, tmp_path):
    record = json.dumps(session())[:-1] + ', "metadata": {"n": 12345678901234567890123456789}}'

    out, err = run(write(tmp_path, '{"sessions": [' + record + "]}"))

    assert "1 skipped" in out and "64 bits" in err
    assert not Session.objects.exists()


def test_an_existing_record_with_a_different_state_is_reported_and_kept_unless_overwrite(db, tmp_path):
    record = session(status="active", metadata={"v": 1})
    run(write(tmp_path, {"sessions": [record]}, "first.json"))
    events = AuditEvent.objects.count()
    changed = {**record, "status": "completed", "metadata": {"v": 2}}
    path = write(tmp_path, {"sessions": [changed]}, "second.json")

    out, err = run(path)

    assert "0 updated, 0 unchanged, 1 skipped" in out
    assert "sessions[0]" in err and "different state (metadata, status)" in err and "--overwrite" in err
    kept = Session.objects.get()
    assert (kept.status, kept.metadata) == ("active", {"v": 1})
    assert AuditEvent.objects.count() == events

    out, _ = run(path, "--overwrite")

    assert "1 updated" in out
    event = AuditEvent.objects.filter(event_type="session.imported").latest("id")
    assert event.metadata["before"] == {"metadata": {"v": 1}, "status": "active"}
    assert event.metadata["after"] == {"metadata": {"v": 2}, "status": "completed"}


def approval_for(task_id, status, **fields):
    return {
        "id": str(uuid.uuid4()),
        "task_id": str(task_id),
        "approver_role": "manager",
        "status": status,
        "requested_by": "o",
        "expires_at": at(600),
        "created_at": at(1),
        "updated_at": at(1),
        **fields,
    }


def test_an_approved_approval_over_a_pending_one_cannot_leave_its_task_stuck(db, tmp_path):
    waiting = task(status="awaiting_approval")
    pending = approval_for(waiting["id"], "pending")
    run(write(tmp_path, {"tasks": [waiting], "approvals": [pending]}, "first.json"))
    approved = {**pending, "status": "approved", "decided_by": "token:1", "decision_at": at(5)}

    out, err = run(write(tmp_path, {"approvals": [approved]}, "second.json"), "--overwrite")

    assert "approvals: 0 created, 0 updated, 0 unchanged, 1 skipped" in out
    assert "awaiting an approval that can never come" in err
    assert Approval.objects.get().status == "pending"


def test_a_decided_approval_imports_with_its_task_in_the_state_that_decision_left(db, tmp_path):
    released = task(status="pending")
    approved = approval_for(released["id"], "approved", decided_by="token:1", decision_at=at(5))

    out, err = run(write(tmp_path, {"tasks": [released], "approvals": [approved]}))

    assert err == ""
    assert Approval.objects.get().status == "approved"


def test_a_new_decided_approval_for_a_waiting_task_is_refused(db, tmp_path):
    waiting = task(status="awaiting_approval")
    rejected = approval_for(waiting["id"], "rejected", decided_by="token:1", decision_at=at(5))

    out, err = run(write(tmp_path, {"tasks": [waiting], "approvals": [rejected]}))

    assert "approvals: 0 created" in out and "1 skipped" in out
    assert not Approval.objects.exists()
