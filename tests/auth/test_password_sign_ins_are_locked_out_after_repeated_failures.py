"""Password sign-ins are limited: after SIGN_IN_FAILURE_LIMIT failures for one username from one
address, that pair is refused (429) for SIGN_IN_LOCKOUT_MINUTES, even with the right password.
Nothing limited them before: an outside review tried 60 wrong passwords on a superuser, then the
right one signed in."""

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from tests.auth.browser_login import STAFF
from tests.auth.browser_login import sign_in as sign_in_at_the_provider
from tests.auth.password_sign_ins import sign_in

pytestmark = pytest.mark.django_db


def test_after_the_limit_even_the_right_password_is_refused(root):
    browser = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(browser, f"wrong-{attempt}").status_code == 200
    assert sign_in(browser, "the-last-wrong-one").status_code == 429

    locked = sign_in(browser, "the-right-one")

    assert locked.status_code == 429
    assert "_auth_user_id" not in browser.session


def test_a_success_below_the_limit_clears_the_count(root):
    browser = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(browser, f"wrong-{attempt}")
    assert sign_in(browser, "the-right-one").status_code == 302
    browser.logout()

    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(browser, f"wrong-again-{attempt}")

    assert sign_in(browser, "the-right-one").status_code == 302


def test_the_lockout_is_of_that_username_from_that_address_alone(root, django_user_model):
    django_user_model.objects.create_superuser("other", email="other@example.com", password="others-password")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), f"wrong-{attempt}")

    other_user = sign_in(Client(), "others-password", username="other")
    elsewhere = sign_in(Client(REMOTE_ADDR="10.1.2.3"), "the-right-one")

    assert other_user.status_code == 302
    assert elsewhere.status_code == 302


def test_the_api_is_not_touched_by_it(finance):
    assert finance.get("/api/v1/sessions").status_code == 200


def test_a_refused_try_during_the_lockout_does_not_extend_it(root):
    # Else a guesser keeps a person locked out for good with one try every cool-off (an outside review).
    browser = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(browser, f"wrong-{attempt}")
    almost_over = settings.AXES_COOLOFF_TIME - timedelta(minutes=1)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - almost_over)
    assert sign_in(browser, "another-wrong-one").status_code == 429

    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=2))

    assert sign_in(browser, "the-right-one").status_code == 302


def _failed_provider_callback(browser):
    state = parse_qs(urlparse(browser.get("/oidc/authenticate/")["Location"]).query)["state"][0]
    return browser.get(f"/oidc/callback/?code=garbage&state={state}")


def test_failed_provider_sign_ins_are_not_counted_and_lock_nobody_out(oidc_login):
    # The callback authenticates without a username: counted, ten failed callbacks locked every
    # provider sign-in from that address out (an outside review). The provider limits its own.
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        _failed_provider_callback(Client())

    _, landed = sign_in_at_the_provider(oidc_login, "innocent-person", STAFF)

    assert landed.status_code == 302
    assert not AccessAttempt.objects.exists()
