"""Password sign-ins at the admin's form, as the lockout tests send them; `root` (tests/auth/conftest.py)
is the account they aim at."""

import re

import requests
from axes.models import AccessAttempt
from django.conf import settings


def sign_in(browser, password, username="root"):
    return browser.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def fail_to_the_limit(browser, username="root"):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(browser, f"wrong-{attempt}", username=username)


def login_form(url):
    """The CSRF cookie and the login form's token from a live server: what a browser holds before it posts."""
    page = requests.get(f"{url}/admin/login/")
    return page.cookies.get_dict(), re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def counted_failures():
    """The failures axes counts, over every pair and User-Agent."""
    return sum(AccessAttempt.objects.values_list("failures_since_start", flat=True))
