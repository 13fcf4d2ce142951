"""import_json reports and skips a record that fails in a way no check foresaw, and imports the
records after it: one bad record never stops the run. The failure is made here by a check that
breaks on one record (the real ones found so far, such as an action whose principal is not an
object, have their checks now)."""

import io
import json
import logging
import uuid

import pytest
from django.core.management import CommandError, call_command

from approvals.models import Approval
from policy.services import digest_of
from transfer import services as transfer

pytestmark = pytest.mark.django_db


def action_approval(action):
    return {
        "id": str(uuid.uuid4()),
        "task_id": None,
        "approver_role": "manager",
        "status": "approved",
        "requested_by": "token:finance",
        "decided_by": "token:manager",
        "decision_at": "2026-01-01T00:10:00+00:00",
        "expires_at": "2026-01-01T01:00:00+00:00",
        # Spent, with its own digest: a grant that could still grant, or whose digest is not its
        # action's, is refused by a check (test_import_never_brings_in_a_grant_that_could_still_grant).
        "granted_use_at": "2026-01-01T00:20:00+00:00",
        "action_digest": digest_of(action),
        "action": action,
    }


def test_an_unforeseen_failure_is_reported_with_its_record_and_the_run_goes_on(tmp_path, caplog, monkeypatch):
    broken = action_approval({"tool": "pay", "principal": {"role": "finance"}, "n": 1})
    fine = action_approval({"tool": "pay", "principal": {"role": "finance"}})
    check = transfer._refuse_a_grant_that_could_still_grant

    def breaks_on_the_first(instance, *, now):
        if str(instance.pk) == broken["id"]:
            raise AttributeError("a check's own bug")
        return check(instance, now=now)

    monkeypatch.setattr(transfer, "_refuse_a_grant_that_could_still_grant", breaks_on_the_first)
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"approvals": [broken, fine]}))
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="skipped"):
        call_command("import_json", str(path), stdout=out, stderr=err)

    assert "approvals: 1 created, 0 updated, 0 unchanged, 1 skipped" in out.getvalue()
    assert f"Skipped approvals[0] (id '{broken['id']}'): unexpected" in err.getvalue()
    assert list(Approval.objects.values_list("pk", flat=True)) == [uuid.UUID(fine["id"])]
    assert any(r.levelno == logging.ERROR and "approvals[0]" in r.getMessage() for r in caplog.records)
