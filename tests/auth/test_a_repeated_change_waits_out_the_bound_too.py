"""A revoke, a pause or a resume that finds its change already made (a retry, a second operator, a
double-click) returns, like the first, only once no process anywhere still acts on the old fact.

The first call commits and then waits ACCESS_CACHE_SECONDS (orchestrator.identity.access_cache).
A second call made during that wait found nothing left to change and used to return at once,
telling its caller the token was dead or the role paused while another server worker still
accepted the token or the role's writes from what it had cached just before the commit.
"""

import threading
import time

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone

from orchestrator.identity import access_cache, tokens
from orchestrator.identity.models import ApiToken
from orchestrator.identity.principal import Principal
from policy import services
from policy.models import RolePause
from tests.auth.test_token_rotation import ADMIN, gunicorn_on_the_test_database  # noqa: F401  (fixture)

STAFF = Principal(subject="token:staff", role="operations", is_staff=True)


def _keep_looking_up(base, headers, method, path, stop):
    """Requests to every worker, so each keeps an entry looked up a moment ago."""
    session = requests.Session()
    while not stop.is_set():
        getattr(session, method)(f"{base}{path}", headers=headers, json={"role": "finance"}, timeout=5)


def _first_change_made_while_workers_look_up(base, headers, method, path, first_change, committed):
    """Start `first_change` while every worker keeps looking the fact up, and return (its thread) once
    `committed()`: the workers' entries were then looked up a moment before the commit."""
    stop = threading.Event()
    hammers = [
        threading.Thread(target=_keep_looking_up, args=(base, headers, method, path, stop), daemon=True)
        for _ in range(4)
    ]
    for hammer in hammers:
        hammer.start()
    time.sleep(0.5)
    first = threading.Thread(target=first_change)
    first.start()
    deadline = time.monotonic() + 10
    while not committed():
        assert time.monotonic() < deadline, "the first change never committed"
        time.sleep(0.005)
    stop.set()
    for hammer in hammers:
        hammer.join()
    return first


def test_a_second_revoke_during_the_first_ones_wait_returns_only_when_no_worker_accepts_the_token(
    gunicorn_on_the_test_database,  # noqa: F811
):
    base = gunicorn_on_the_test_database
    token, raw = tokens.issue_token(actor=ADMIN, role="finance")
    headers = {"Authorization": f"Bearer {raw}"}
    first = _first_change_made_while_workers_look_up(
        base,
        headers,
        "get",
        "/api/v1/sessions",
        lambda: tokens.revoke_token(actor=ADMIN, token_id=token.pk),
        lambda: ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=False).exists(),
    )
    try:
        tokens.revoke_token(actor="user:grace", token_id=token.pk)
        answers = {requests.get(f"{base}/api/v1/sessions", headers=headers, timeout=5).status_code for _ in range(20)}
    finally:
        first.join()

    assert answers == {401}


def test_a_second_pause_during_the_first_ones_wait_returns_only_when_no_worker_accepts_the_roles_writes(
    gunicorn_on_the_test_database,  # noqa: F811
):
    base = gunicorn_on_the_test_database
    _, staff = tokens.issue_token(actor=ADMIN, role="operations", is_staff=True)
    _, finance = tokens.issue_token(actor=ADMIN, role="finance")
    staff_headers = {"Authorization": f"Bearer {staff}"}
    finance_headers = {"Authorization": f"Bearer {finance}"}

    def pause():
        requests.post(f"{base}/api/v1/roles/finance/pause", headers=staff_headers, json={}, timeout=10)

    first = _first_change_made_while_workers_look_up(
        base,
        finance_headers,
        "post",
        "/api/v1/sessions",
        pause,
        lambda: RolePause.objects.filter(role="finance").exists(),
    )
    try:
        started = time.monotonic()
        second = requests.post(f"{base}/api/v1/roles/finance/pause", headers=staff_headers, json={}, timeout=10)
        waited = time.monotonic() - started
        answers = {
            requests.post(
                f"{base}/api/v1/sessions", headers=finance_headers, json={"role": "finance"}, timeout=5
            ).status_code
            for _ in range(20)
        }
    finally:
        first.join()

    assert second.status_code == 200
    assert answers == {423}, f"the second pause returned after {waited:.3f}s"


# The same, without servers: a change already committed by someone else (here written behind the
# services' back) may be a moment old, so the call that finds it made waits the bound out as well.


def _revoked_already():
    token, _ = tokens.issue_token(actor=ADMIN, role="finance")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    return lambda: tokens.revoke_token(actor=ADMIN, token_id=token.pk)


def _paused_already():
    RolePause.objects.create(role="finance", paused_by="user:ada")
    return lambda: services.pause_role(principal=STAFF, role="finance", trace_id="")


def _resumed_already():
    return lambda: services.resume_role(principal=STAFF, role="finance", trace_id="")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "made_already", [_revoked_already, _paused_already, _resumed_already], ids=["revoke", "pause", "resume"]
)
def test_a_change_that_finds_itself_made_already_still_returns_only_after_the_bound(made_already):
    call = made_already()
    started = time.monotonic()
    call()
    assert time.monotonic() - started >= access_cache.ACCESS_CACHE_SECONDS


@pytest.mark.django_db(transaction=True)
def test_the_admins_revoke_action_on_a_token_revoked_a_moment_ago_still_waits_out_the_bound(client):
    token, _ = tokens.issue_token(actor=ADMIN, role="finance")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    started = time.monotonic()
    response = client.post(
        "/admin/identity/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert response.status_code == 200
    assert time.monotonic() - started >= access_cache.ACCESS_CACHE_SECONDS
