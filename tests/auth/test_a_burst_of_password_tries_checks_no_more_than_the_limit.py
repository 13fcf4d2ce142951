"""Password tries for one username from one address are checked one at a time: a burst sent together
has no more passwords checked than SIGN_IN_FAILURE_LIMIT before the lockout refuses the rest. axes
checks the count before the password's slow hash and adds to it after, so before this every try in
flight was checked (as many as the server ran at once)."""

import threading
from collections import Counter

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from orchestrator.identity import sign_ins
from tests.auth.password_sign_ins import counted_failures, login_form

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("production_password_hashing")]


def try_password(url, form, password, *, username="root", user_agent="browser"):
    cookies, token = form
    return requests.post(
        f"{url}/admin/login/",
        cookies=cookies,
        data={"csrfmiddlewaretoken": token, "username": username, "password": password},
        headers={"Referer": f"{url}/admin/login/", "User-Agent": user_agent},
        allow_redirects=False,
    )


def test_a_burst_of_wrong_passwords_has_the_limit_checked_and_the_rest_refused(live_server, root):
    form = login_form(live_server.url)
    tries = settings.AXES_FAILURE_LIMIT + 10
    start = threading.Barrier(tries)
    answers = Counter()

    def guess(attempt):
        start.wait()
        status = try_password(live_server.url, form, f"wrong-{attempt}", user_agent=f"agent-{attempt}").status_code
        answers[status] += 1

    threads = [threading.Thread(target=guess, args=(attempt,)) for attempt in range(tries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counted_failures() == settings.AXES_FAILURE_LIMIT
    # The form's "wrong password" page for the tries checked, the lockout's 429 for the rest; the try
    # that locks is answered 429 too.
    assert answers == {200: settings.AXES_FAILURE_LIMIT - 1, 429: 11}


def test_the_right_password_in_a_burst_after_the_limit_is_refused(live_server, root):
    form = login_form(live_server.url)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        try_password(live_server.url, form, f"wrong-{attempt}")

    assert try_password(live_server.url, form, "the-right-one").status_code == 429


def test_a_try_that_waits_too_long_for_its_turn_is_refused_uncounted(live_server, root, monkeypatch):
    monkeypatch.setattr(sign_ins, "SIGN_IN_WAIT_SECONDS", 0.3)
    form = login_form(live_server.url)
    key = sign_ins.sign_in_lock_key("root", "127.0.0.1")
    with psycopg.connect(**connection.get_connection_params()) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", [sign_ins.SIGN_IN_LOCK_NAMESPACE, key])

        answer = try_password(live_server.url, form, "the-right-one")

    assert answer.status_code == 200
    assert "is being checked. Try again in a moment." in answer.text
    assert counted_failures() == 0
    assert try_password(live_server.url, form, "the-right-one").status_code == 302


def test_a_wait_the_servers_statement_timeout_cuts_short_is_a_busy_refusal_too(root):
    key = sign_ins.sign_in_lock_key("root", "127.0.0.1")
    with psycopg.connect(**connection.get_connection_params()) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", [sign_ins.SIGN_IN_LOCK_NAMESPACE, key])
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 300")
        try:
            with (
                pytest.raises(sign_ins.SignInBusy),
                sign_ins.one_sign_in_at_a_time(username="root", address="127.0.0.1"),
            ):
                pass
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")


def test_a_username_longer_than_any_account_holds_is_refused_by_the_form_uncounted(live_server, root):
    answer = try_password(live_server.url, login_form(live_server.url), "wrong", username="r" * 300)

    assert answer.status_code == 200
    assert "Ensure this value has at most 150 characters" in answer.text
    assert counted_failures() == 0
