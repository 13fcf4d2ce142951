"""A claimed task that import_json brings in is claimed by no one here. Principal subjects are local
to an instance (`token:5` there is another agent than `token:5` here), and the API shows the lease
token to the principal named in `claimed_by`. So the claimer is kept on record behind `imported:`,
which no principal's subject starts with, and the lease token is never the file's: no local agent is
shown one or can heartbeat, complete, fail or release the task with the file's (409). The task stays
claimed until its lease passes and reclaim_tasks (or claim-next) takes it as any passed lease.

The same claim always gets the same token here, so importing a file twice, or this instance's own
export of it, changes nothing; a claim held here that the record leaves as it is stays its claimer's.

Found by an outside review: a local namesake of the exporting instance's claimer was shown the lease
token, and could complete the task in the claimer's place."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from routing.models import Task
from tests.jobs.import_records import run, soon, task_record, write

pytestmark = pytest.mark.django_db

THEIR_TOKEN = "the-claimers-token-on-the-other-instance"


def claimed_elsewhere(claimer, *, lease_expires_at=None, **fields):
    """A task claimed on the exporting instance by `claimer` (a subject there), as its export writes it."""
    return task_record(
        status="claimed",
        claimed_by=claimer,
        claimed_at=(timezone.now() - timedelta(minutes=1)).isoformat(),
        attempt=1,
        lease_token=THEIR_TOKEN,
        lease_expires_at=lease_expires_at or soon(),
        **fields,
    )


def post(agent, task_id, action, body):
    return agent.post(f"/api/v1/tasks/{task_id}/{action}", body, format="json")


def export(tmp_path, name):
    path = tmp_path / name
    call_command("export_json", str(path), stdout=io.StringIO())
    return path, json.loads(path.read_text())


def test_a_namesake_of_the_claimer_is_not_shown_the_lease_token(tmp_path, make_agent):
    namesake = make_agent("engineering")
    record = claimed_elsewhere(namesake.token.subject)
    run(write(tmp_path, {"tasks": [record]}))

    body = namesake.get(f"/api/v1/tasks/{record['id']}").json()

    assert body["lease_token"] is None
    assert body["status"] == "claimed"
    assert body["claimed_by"] == f"imported:{namesake.token.subject}"
    assert Task.objects.get(pk=record["id"]).lease_token not in ("", THEIR_TOKEN)


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("heartbeat", {"lease_token": THEIR_TOKEN}),
        ("complete", {"lease_token": THEIR_TOKEN, "result": {"done": True}}),
        ("fail", {"lease_token": THEIR_TOKEN}),
        ("release", {"lease_token": THEIR_TOKEN}),
    ],
)
def test_the_lease_token_from_the_file_answers_409_and_changes_nothing(tmp_path, make_agent, action, body):
    namesake = make_agent("engineering")
    record = claimed_elsewhere(namesake.token.subject)
    run(write(tmp_path, {"tasks": [record]}))

    response = post(namesake, record["id"], action, body)

    assert response.status_code == 409, response.content
    assert response.json()["type"].endswith("/lease_superseded")
    task = Task.objects.get(pk=record["id"])
    assert (task.status, task.attempt, task.result) == ("claimed", 1, None)


def test_after_its_lease_the_task_is_reclaimed_and_a_local_agent_claims_and_finishes_it(tmp_path, make_agent):
    namesake = make_agent("engineering")
    passed = (timezone.now() - timedelta(seconds=30)).isoformat()
    record = claimed_elsewhere(namesake.token.subject, lease_expires_at=passed)
    run(write(tmp_path, {"tasks": [record]}))
    # A passed lease is honoured until someone takes over: not the file's token, though.
    assert post(namesake, record["id"], "complete", {"lease_token": THEIR_TOKEN}).status_code == 409

    call_command("reclaim_tasks", stdout=io.StringIO())

    assert Task.objects.get(pk=record["id"]).status == "pending"
    worker = make_agent("engineering", name="local worker")
    claimed = worker.post("/api/v1/tasks/claim-next", {}, format="json").json()
    assert (claimed["task_id"], claimed["claimed_by"], claimed["attempt"]) == (
        record["id"],
        worker.token.subject,
        2,
    )
    assert claimed["lease_token"]
    finished = post(worker, record["id"], "complete", {"lease_token": claimed["lease_token"], "result": {}})
    assert finished.status_code == 200, finished.content


def test_importing_the_same_file_twice_reports_nothing_changed(tmp_path):
    path = write(tmp_path, {"tasks": [claimed_elsewhere("token:5")]})
    run(path)
    stored = Task.objects.values().get()
    events = AuditEvent.objects.count()

    out, err = run(path)

    assert "tasks: 0 created, 0 updated, 1 unchanged, 0 skipped" in out
    assert err == ""
    assert Task.objects.values().get() == stored
    assert AuditEvent.objects.count() == events


def test_a_re_export_shows_the_marked_claimer_and_imports_back_as_it_is(tmp_path):
    record = claimed_elsewhere("oidc:someone-there")
    run(write(tmp_path, {"tasks": [record]}))

    path, exported = export(tmp_path, "again.json")

    [task] = exported["tasks"]
    assert task["claimed_by"] == "imported:oidc:someone-there"
    assert task["lease_token"] not in ("", THEIR_TOKEN)
    out, _ = run(path)
    assert "tasks: 0 created, 0 updated, 1 unchanged, 0 skipped" in out
    # Restored into an empty database, it comes back the same: marked once, with the same token.
    Task.objects.all().delete()
    run(path)
    assert export(tmp_path, "restored.json")[1]["tasks"] == exported["tasks"]


def test_a_claim_held_here_that_the_record_leaves_as_it_is_stays_its_claimers(tmp_path, route, engineering):
    task = route()
    token = engineering.post(f"/api/v1/tasks/{task['task_id']}/claim", {}, format="json").json()["lease_token"]
    path, _ = export(tmp_path, "own.json")

    out, _ = run(path)

    assert "tasks: 0 created, 0 updated, 1 unchanged, 0 skipped" in out
    assert engineering.get(f"/api/v1/tasks/{task['task_id']}").json()["lease_token"] == token
    assert post(engineering, task["task_id"], "heartbeat", {"lease_token": token}).status_code == 200


def test_with_overwrite_a_newer_claim_from_the_file_is_nobodys_too(tmp_path, make_agent):
    first = claimed_elsewhere("token:5")
    run(write(tmp_path, {"tasks": [first]}))
    first_token = Task.objects.get(pk=first["id"]).lease_token
    namesake = make_agent("engineering")
    newer = {**first, "claimed_by": namesake.token.subject, "attempt": 2, "lease_token": "a-newer-token-there"}
    path = write(tmp_path, {"tasks": [newer]}, "newer.json")

    out, err = run(path)
    assert "tasks: 0 created, 0 updated, 0 unchanged, 1 skipped" in out
    assert "claimed_by" in err and "--overwrite" in err

    out, _ = run(path, "--overwrite")

    assert "tasks: 0 created, 1 updated" in out
    task = Task.objects.get(pk=first["id"])
    assert (task.claimed_by, task.attempt) == (f"imported:{namesake.token.subject}", 2)
    assert task.lease_token not in ("", first_token, "a-newer-token-there")
    assert namesake.get(f"/api/v1/tasks/{task.pk}").json()["lease_token"] is None
    assert post(namesake, task.pk, "heartbeat", {"lease_token": "a-newer-token-there"}).status_code == 409
    event = AuditEvent.objects.filter(event_type="task.imported", target_id=str(task.pk)).latest("id")
    assert event.metadata["before"]["claimed_by"] == "imported:token:5"
    assert event.metadata["after"]["claimed_by"] == f"imported:{namesake.token.subject}"
    assert event.metadata["after"]["lease_token"] == "(not recorded)"
    assert "tasks: 0 created, 0 updated, 1 unchanged, 0 skipped" in run(path, "--overwrite")[0]


def test_an_overwrite_onto_a_claim_held_here_makes_it_nobodys(tmp_path, route, engineering):
    task = route()
    token = engineering.post(f"/api/v1/tasks/{task['task_id']}/claim", {}, format="json").json()["lease_token"]
    record = claimed_elsewhere("token:5", id=task["task_id"], from_role="finance", to_role="engineering")

    run(write(tmp_path, {"tasks": [record]}), "--overwrite")

    assert Task.objects.get(pk=task["task_id"]).claimed_by == "imported:token:5"
    assert post(engineering, task["task_id"], "heartbeat", {"lease_token": token}).status_code == 409
    assert post(engineering, task["task_id"], "heartbeat", {"lease_token": THEIR_TOKEN}).status_code == 409
