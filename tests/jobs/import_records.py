"""Records as export_json writes them, for the import tests: a task and an approval gating it."""

import uuid


def task_record(*, status="awaiting_approval", **fields):
    return {
        "id": str(uuid.uuid4()),
        "type": "report",
        "from_role": "finance",
        "to_role": "engineering",
        "payload": {},
        "trace_id": "trace-import",
        "status": status,
        "created_by": "token:finance",
        **fields,
    }


def approval_record(task, *, expires_at="2030-01-01T00:00:00+00:00", **fields):
    return {
        "id": str(uuid.uuid4()),
        "task_id": task["id"],
        "approver_role": "manager",
        "status": "pending",
        "requested_by": "token:finance",
        "expires_at": expires_at,
        **fields,
    }
