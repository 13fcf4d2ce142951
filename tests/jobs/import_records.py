"""Records as export_json writes them, for the import tests (a session, a task, an approval gating
it, a notification), and import_json run on a file of them."""

import io
import json
import uuid
from datetime import timedelta

from django.core.management import CommandError, call_command
from django.utils import timezone

from transfer.management.commands.import_json import RECORDS_SKIPPED


def write(tmp_path, data, name="in.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def run(path, *args):
    """import_json on `path`: (stdout, stderr). An import that skipped records ends with exit status 1
    (RECORDS_SKIPPED, test_an_import_that_skips_records_exits_non_zero.py); here its output is what counts."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_json", str(path), *args, stdout=out, stderr=err)
    except CommandError as exc:
        if str(exc) != RECORDS_SKIPPED:
            raise
    return out.getvalue(), err.getvalue()


def soon():
    """A time a little ahead, within every bound the import puts on a live record's times (an
    approval's expires_at, a lease's end)."""
    return (timezone.now() + timedelta(minutes=10)).isoformat()


def session_record(**fields):
    return {
        "id": str(uuid.uuid4()),
        "role": "finance",
        "owner": "token:1",
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
        **fields,
    }


def notification_record(**fields):
    return {
        "id": str(uuid.uuid4()),
        "to_role": "manager",
        "from_role": "finance",
        "message": "hello",
        "trace_id": "trace-import",
        "created_by": "token:finance",
        **fields,
    }


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


def approval_record(task, *, expires_at=None, **fields):
    return {
        "id": str(uuid.uuid4()),
        "task_id": task["id"],
        "approver_role": "manager",
        "status": "pending",
        "requested_by": "token:finance",
        "expires_at": expires_at or soon(),
        **fields,
    }
