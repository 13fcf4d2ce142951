"""A list page ends after the row whose large columns reach LIST_PAGE_MAX_BYTES, so one request cannot
load 200 rows of a MiB each; following the next cursor still gives every row once, in order, and a
row larger than the budget still comes, alone on its page."""

import pytest

from audit import services as audit
from sessions.models import Session

ROW_TEXT = "x" * 3000  # each row's large column holds a little over 3,000 bytes
BUDGET = 10_000  # so a page of these ends after its fourth row


@pytest.fixture
def budget(settings):
    settings.LIST_PAGE_MAX_BYTES = BUDGET


def every_page(client, path, items_key, *, cursor_param="cursor", next_key="next_cursor", first=""):
    """The items of each page of a list, following its next cursor to the end."""
    pages, cursor = [], first
    while cursor is not None:
        separator = "&" if "?" in path else "?"
        response = client.get(f"{path}{separator}{cursor_param}={cursor}")
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append(body[items_key])
        cursor = body[next_key]
        assert len(pages) < 50, "the pages never end"
    return pages


def sessions_with_metadata(count, text=ROW_TEXT):
    return Session.objects.bulk_create(
        [Session(role="finance", status="pending", owner="seed", metadata={"k": text}) for _ in range(count)]
    )


def test_a_keyset_page_of_sessions_ends_at_the_budget_and_the_cursor_gives_the_rest_once_each(finance, budget):
    sessions_with_metadata(10)
    expected = [str(pk) for pk in Session.objects.order_by("-created_at", "-id").values_list("pk", flat=True)]

    pages = every_page(finance, "/api/v1/sessions?limit=200", "sessions")

    assert [len(page) for page in pages] == [4, 4, 2]
    assert [s["session_id"] for page in pages for s in page] == expected


def test_an_offset_page_ends_at_the_budget_with_the_total_and_a_cursor_to_go_on(finance, budget):
    sessions_with_metadata(10)
    expected = [str(pk) for pk in Session.objects.order_by("-created_at", "-id").values_list("pk", flat=True)]

    first = finance.get("/api/v1/sessions?limit=200&offset=0").json()
    after = finance.get(f"/api/v1/sessions?limit=200&offset={len(first['sessions'])}").json()
    by_cursor = every_page(finance, "/api/v1/sessions?limit=200", "sessions", first=first["next_cursor"])

    assert (len(first["sessions"]), first["total"], first["offset"]) == (4, 10, 0)
    assert [s["session_id"] for s in first["sessions"] + after["sessions"]] == expected[:8]
    assert [s["session_id"] for page in [first["sessions"], *by_cursor] for s in page] == expected


def test_a_row_larger_than_the_budget_comes_alone_at_the_top_of_a_page_and_ends_one_below(finance, budget):
    sessions_with_metadata(4)
    sessions_with_metadata(1, text="y" * (3 * BUDGET))  # the newest: the top of the first page
    first_pages = every_page(finance, "/api/v1/sessions?limit=200", "sessions")
    sessions_with_metadata(2)  # now above it: the page ends after it, the first row to reach the budget

    later_pages = every_page(finance, "/api/v1/sessions?limit=200", "sessions")

    sizes = [[len(s["metadata"]["k"]) for s in page] for page in first_pages]
    assert sizes == [[3 * BUDGET], [3000] * 4]
    sizes = [[len(s["metadata"]["k"]) for s in page] for page in later_pages]
    assert sizes == [[3000, 3000, 3 * BUDGET], [3000] * 4]


def test_a_page_of_small_rows_still_holds_its_limit(finance, budget):
    sessions_with_metadata(30, text="small")

    body = finance.get("/api/v1/sessions?limit=25&cursor=").json()

    assert len(body["sessions"]) == 25 and body["next_cursor"]


def test_sessions_of_a_mib_each_answer_pages_of_a_few_mib(finance):
    """The default budget (4 MiB) against the largest metadata a request can carry: before it the
    first page of 24 such sessions was one answer of 24 MiB (and of 200 MiB with 200 of them)."""
    sessions_with_metadata(24, text="z" * (1024 * 1024 - 100))

    response = finance.get("/api/v1/sessions?limit=200&cursor=")

    assert response.status_code == 200
    assert len(response.content) < 5 * 1024 * 1024 + 64 * 1024
    assert [len(page) for page in every_page(finance, "/api/v1/sessions?limit=200", "sessions")] == [5] * 4 + [4]


def test_a_transcript_page_ends_at_the_budget_and_next_after_gives_the_rest(finance, budget):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    for _ in range(10):
        response = finance.post(f"/api/v1/sessions/{session_id}/messages", {"content": ROW_TEXT}, format="json")
        assert response.status_code == 201

    pages = every_page(
        finance,
        f"/api/v1/sessions/{session_id}/messages?limit=200",
        "messages",
        cursor_param="after",
        next_key="next_after",
        first=0,
    )

    assert [len(page) for page in pages] == [4, 4, 2]
    ids = [m["message_id"] for page in pages for m in page]
    assert ids == sorted(ids) and len(set(ids)) == 10


def test_task_and_approval_pages_end_at_the_budget(finance, route, budget):
    for _ in range(10):
        route(payload={"k": ROW_TEXT}, requires_approval=True, approver_role="manager", approval_notes=ROW_TEXT)

    tasks = every_page(finance, "/api/v1/tasks?limit=200", "tasks")
    approvals = every_page(finance, "/api/v1/approvals?limit=200", "approvals")

    assert [len(page) for page in tasks] == [4, 4, 2]
    assert len({t["task_id"] for page in tasks for t in page}) == 10
    # An approval's page counts its notes and the task it gates, which the list loads with it.
    assert [len(page) for page in approvals] == [2] * 5
    assert len({a["approval_id"] for page in approvals for a in page}) == 10


def test_a_notification_page_ends_at_the_budget(finance, manager, budget):
    for _ in range(10):
        response = manager.post("/api/v1/notifications", {"to_role": "finance", "message": ROW_TEXT}, format="json")
        assert response.status_code == 202

    pages = every_page(finance, "/api/v1/notifications?limit=200", "notifications")

    assert [len(page) for page in pages] == [4, 4, 2]
    assert len({n["notification_id"] for page in pages for n in page}) == 10


def test_an_audit_page_ends_at_the_budget_and_the_cursor_gives_the_rest_once_each(staff, budget):
    audit.record_many(
        {
            "event_type": "budget.test",
            "actor": "test",
            "role": "finance",
            "trace_id": "",
            "target_type": "thing",
            "target_id": str(index),
            "metadata": {"k": ROW_TEXT},
        }
        for index in range(10)
    )

    pages = every_page(staff, "/api/v1/audit?event_type=budget.test&limit=200", "events")

    assert [len(page) for page in pages] == [4, 4, 2]
    assert [e["target_id"] for page in pages for e in page] == [str(index) for index in reversed(range(10))]


def test_a_budget_past_32_bits_is_taken_as_no_bound_at_all(finance, settings):
    """An operator may set a huge budget to mean "no bound": past 2**31 it failed every bounded read
    on PostgreSQL (the sum compared as a 32-bit integer; an outside review)."""
    settings.LIST_PAGE_MAX_BYTES = 2**40
    sessions_with_metadata(3)

    body = finance.get("/api/v1/sessions?limit=200&cursor=").json()

    assert len(body["sessions"]) == 3 and body["next_cursor"] is None
