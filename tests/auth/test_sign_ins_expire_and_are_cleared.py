"""Sign-ins are kept in the session table, which nothing emptied: an expired one stayed a row for
good, and with OIDC login on every anonymous visit to /oidc/authenticate/ stored one for two weeks
(an outside review). Such a visit's row now expires with the provider round trip, a completed sign-in
gets the session's full lifetime again, and a beat job clears the expired rows."""

from datetime import timedelta
from urllib.parse import urlparse

import pytest
import requests
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from orchestrator.identity import jobs, sign_ins
from tests.auth.browser_login import STAFF

pytestmark = pytest.mark.django_db


def test_an_anonymous_visit_to_the_sign_in_stores_its_state_for_the_round_trip_alone(oidc_login):
    Client().get("/oidc/authenticate/")

    [row] = Session.objects.all()
    left = (row.expire_date - timezone.now()).total_seconds()
    assert sign_ins.PROVIDER_ROUND_TRIP_SECONDS - 60 < left <= sign_ins.PROVIDER_ROUND_TRIP_SECONDS


def test_a_completed_sign_in_gets_the_sessions_full_lifetime(oidc_login):
    oidc_login.set_user("lifetime-person", STAFF)
    browser = Client()
    to_provider = browser.get("/oidc/authenticate/")
    authorized = requests.post(
        to_provider["Location"], data={"sub": "lifetime-person"}, allow_redirects=False, timeout=5
    )
    callback = urlparse(authorized.headers["Location"])
    browser.get(f"{callback.path}?{callback.query}")

    row = Session.objects.get(session_key=browser.session.session_key)
    left = (row.expire_date - timezone.now()).total_seconds()
    assert left > settings.SESSION_COOKIE_AGE - 60


def test_the_job_clears_the_expired_sign_ins_and_keeps_the_live_ones(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("olga", password="pw-for-tests", is_staff=True))
    Session.objects.create(session_key="x" * 32, session_data="", expire_date=timezone.now() - timedelta(days=1))

    jobs.clear_expired_sign_ins.apply().get()

    assert list(Session.objects.values_list("session_key", flat=True)) == [client.session.session_key]
