"""The task list: tasks from or to the caller's role, filtered, in keyset pages."""

from routing.models import Task


def test_an_agent_lists_tasks_addressed_to_its_role_and_tasks_it_sent_but_no_others(route, engineering, make_agent):
    to_engineering = route("engineering")
    from_engineering = route("support", agent=engineering)
    route("support")

    response = engineering.get("/api/v1/tasks")

    assert response.status_code == 200
    ids = {t["task_id"] for t in response.json()["tasks"]}
    assert ids == {to_engineering["task_id"], from_engineering["task_id"]}


def test_the_inbox_filters_by_target_role_and_status(route, engineering):
    waiting = route()
    claimed = route()
    engineering.post(f"/api/v1/tasks/{claimed['task_id']}/claim")

    response = engineering.get("/api/v1/tasks?to_role=engineering&status=pending")

    assert [t["task_id"] for t in response.json()["tasks"]] == [waiting["task_id"]]


def test_cursor_pages_walk_every_task_once_newest_first(route, staff):
    ids = [route()["task_id"] for _ in range(5)]
    seen, cursor = [], ""
    while cursor is not None:
        page = staff.get(f"/api/v1/tasks?limit=2&cursor={cursor}").json()
        seen += [t["task_id"] for t in page["tasks"]]
        cursor = page["next_cursor"]

    assert seen == ids[::-1]


def test_a_malformed_cursor_or_status_answers_400(staff):
    assert staff.get("/api/v1/tasks?cursor=%%%").status_code == 400
    assert staff.get("/api/v1/tasks?status=sleeping").status_code == 400


def test_reading_another_roles_task_answers_404(route, make_agent):
    task = route()

    assert make_agent("marketing").get(f"/api/v1/tasks/{task['task_id']}").status_code == 404
    assert make_agent("marketing").get("/api/v1/tasks/not-a-uuid").status_code == 400
    assert Task.objects.count() == 1
