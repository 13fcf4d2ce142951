import subprocess
import sys
import threading
import time

import pytest
from django.db import connection, transaction

from agent_tools import (
    Conflict,
    ControllerError,
    Forbidden,
    InvalidRequest,
    NotFound,
    OrchestratorClient,
    Session,
    Unauthorized,
)
from audit.models import AuditEvent
from routing.models import Task
from tests.agent_tools.conftest import REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def test_results_are_typed_and_carry_the_trace_id_sent_in_x_trace_id(api_url, issue_token):
    client = OrchestratorClient(api_url, issue_token("finance"))

    session = client.create_session(role="finance", metadata={"ticket": 9}, trace_id="trace-client")

    assert isinstance(session, Session)
    assert (session.role, session.status, session.metadata) == ("finance", "pending", {"ticket": 9})
    assert session.trace_id == "trace-client"
    event = AuditEvent.objects.get(event_type="session.created", target_id=session.session_id)
    assert event.trace_id == "trace-client"


def test_each_refusal_raises_its_own_exception_with_the_problem_detail(api_url, issue_token):
    client = OrchestratorClient(api_url, issue_token("finance"))
    session = client.create_session(role="finance")
    client.update_session(session.session_id, status="active")
    client.update_session(session.session_id, status="completed")

    with pytest.raises(NotFound) as not_found:
        client.get_session("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidRequest) as invalid:
        client.route_task(to_role="astrology", type="t", payload={})
    with pytest.raises(Forbidden):
        client.create_session(role="manager")
    with pytest.raises(Conflict) as conflict:
        client.update_session(session.session_id, status="active")
    with pytest.raises(Unauthorized):
        OrchestratorClient(api_url, "orch_wrong").get_session(session.session_id)

    assert not_found.value.status == 404
    assert "to_role" in invalid.value.errors and "astrology" in invalid.value.detail
    assert conflict.value.problem["current_status"] == "completed"
    assert len(not_found.value.trace_id) == 32


def test_an_id_is_one_path_segment_so_it_cannot_reach_another_endpoint(api_url, issue_token):
    client = OrchestratorClient(api_url, issue_token("finance"))

    for hostile in ("..", "../tasks", "x?status=pending", "a/b"):
        with pytest.raises((InvalidRequest, NotFound)):
            client.get_session(hostile)


def test_a_503_is_retried_a_bounded_number_of_times_with_one_key_then_raises_with_the_trace_id(
    dead_database_server, proxy_to
):
    proxy = proxy_to(dead_database_server)
    client = OrchestratorClient(proxy.url, "orch_any", max_attempts=3, backoff=0.01)

    with pytest.raises(ControllerError) as failure:
        client.create_session(role="finance", trace_id="trace-down")

    assert [r["status"] for r in proxy.requests] == [503, 503, 503]
    assert len({r["headers"]["idempotency-key"] for r in proxy.requests}) == 1
    assert {r["headers"]["x-trace-id"] for r in proxy.requests} == {"trace-down"}
    assert (failure.value.status, failure.value.trace_id) == (503, "trace-down")


def test_an_unreachable_orchestrator_raises_a_controller_error_after_the_last_attempt(refused_url):
    client = OrchestratorClient(refused_url, "orch_any", max_attempts=2, backoff=0.01)

    with pytest.raises(ControllerError) as failure:
        client.get_session("00000000-0000-0000-0000-000000000000", trace_id="trace-unreachable")

    assert failure.value.status is None
    assert failure.value.trace_id == "trace-unreachable"
    assert "could not be reached after 2 attempts" in str(failure.value)


def test_a_retry_that_meets_the_first_attempt_still_running_waits_and_gets_its_answer(api_url, issue_token, proxy_to):
    """The first attempt times out on the client while the server still works on it (blocked on a
    table lock the test holds); the retry meets it in flight (409), waits, and gets the replay."""
    proxy = proxy_to(api_url)
    client = OrchestratorClient(proxy.url, issue_token("finance"), timeout=0.5, max_attempts=8, backoff=0.05)
    outcome = {}

    def route():
        try:
            outcome["task"] = client.route_task(to_role="engineering", type="slow", payload={}, trace_id="trace-busy")
        except Exception as exc:
            outcome["error"] = exc

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Task._meta.db_table} IN EXCLUSIVE MODE")
        caller = threading.Thread(target=route)
        caller.start()
        deadline = time.monotonic() + 30
        while 409 not in [r["status"] for r in proxy.requests] and time.monotonic() < deadline:
            time.sleep(0.05)
    caller.join(timeout=60)

    assert "error" not in outcome, outcome.get("error")
    statuses = [r["status"] for r in proxy.requests]
    assert 409 in statuses and statuses[-1] == 202
    assert len({r["headers"]["idempotency-key"] for r in proxy.requests}) == 1
    assert outcome["task"].replayed is True
    assert [str(t.pk) for t in Task.objects.filter(trace_id="trace-busy")] == [outcome["task"].task_id]


def test_from_env_reads_the_url_token_and_retry_policy():
    client = OrchestratorClient.from_env(
        {
            "ORCHESTRATOR_URL": "http://orchestrator.internal:8000/",
            "ORCHESTRATOR_TOKEN": "orch_secret",
            "ORCHESTRATOR_TIMEOUT": "2.5",
            "ORCHESTRATOR_MAX_ATTEMPTS": "6",
        }
    )

    assert (client.base_url, client.token, client.timeout, client.max_attempts) == (
        "http://orchestrator.internal:8000",
        "orch_secret",
        2.5,
        6,
    )


def test_the_agent_tools_never_load_the_orm_nor_configure_django():
    # orchestrator/__init__.py loads the Celery app, which imports django.conf lazily; that is all.
    probe = (
        "import sys, agent_tools.server; "
        "conf = sys.modules.get('django.conf'); "
        "print(sorted(m for m in sys.modules if m.startswith(('django.db', 'django.apps', 'rest_framework'))), "
        "bool(conf and conf.settings.configured))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True, env={}
    ).stdout.strip()

    assert loaded == "[] False"


def test_a_redirect_is_reported_instead_of_followed(api_url, issue_token):
    # Under /admin every unknown path redirects to the admin login page.
    client = OrchestratorClient(f"{api_url}/admin", issue_token("finance"), max_attempts=1)

    with pytest.raises(ControllerError) as failure:
        client.get_session("00000000-0000-0000-0000-000000000000")

    assert failure.value.status == 302
    assert "/admin/login/" in str(failure.value) and "ORCHESTRATOR_URL" in str(failure.value)
