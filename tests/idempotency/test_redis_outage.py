"""Idempotency does not rest on Redis: stopped mid-test or never there, requests succeed and run exactly once."""

import pytest
import requests
from django.test import override_settings

from orchestrator.http.idempotency import REPLAYED_HEADER
from sessions.models import Session
from tests.idempotency.burst import assert_one_execution, burst
from tests.idempotency.conftest import free_port, redis_cache_settings

pytestmark = pytest.mark.django_db(transaction=True)


def test_stopping_redis_mid_test_keeps_replays_and_exactly_once_creation(live_caller, live_url, redis_process, new_key):
    with override_settings(CACHES=redis_cache_settings(redis_process.port), REDIS_URL="redis://cache"):
        caller = live_caller("finance")
        key = new_key()
        first = caller.send("POST", "/sessions", {"role": "finance"}, key=key)
        assert first.status_code == 201
        assert caller.send("POST", "/sessions", {"role": "finance"}, key=key).headers[REPLAYED_HEADER] == "true"

        redis_process.stop()

        retry = caller.send("POST", "/sessions", {"role": "finance"}, key=key)
        assert retry.status_code == 201
        assert retry.headers[REPLAYED_HEADER] == "true"
        assert retry.content == first.content

        responses = burst(caller, "POST", "/sessions", {"role": "finance", "metadata": {"n": 2}}, key=new_key())
        assert_one_execution(responses, status=201)
        assert Session.objects.count() == 2
        assert requests.get(live_url + "/api/v1/health", timeout=30).json()["cache"] == "degraded"


def test_a_cache_pointed_at_a_dead_port_keeps_replays_and_exactly_once_creation(live_caller, new_key):
    with override_settings(CACHES=redis_cache_settings(free_port())):
        caller = live_caller("finance")
        key = new_key()

        responses = burst(caller, "POST", "/sessions", {"role": "finance"}, key=key)
        assert_one_execution(responses, status=201)
        retry = caller.send("POST", "/sessions", {"role": "finance"}, key=key)

        assert retry.headers[REPLAYED_HEADER] == "true"
        assert Session.objects.count() == 1
