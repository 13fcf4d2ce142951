"""Password sign-ins at the admin's form, as the lockout tests send them; `root` (tests/auth/conftest.py)
is the account they aim at."""

from django.conf import settings


def sign_in(browser, password, username="root"):
    return browser.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def fail_to_the_limit(browser, username="root"):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(browser, f"wrong-{attempt}", username=username)
