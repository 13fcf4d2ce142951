"""Commits that wrote audit events wake open streams through Redis, without the request waiting on it."""

import time
import urllib.parse

import redis
from django.conf import settings

from audit import stream


def first_message(subscriber, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = subscriber.get_message(timeout=0.5)
        if message is not None:
            return message
    return None


def subscribe(url=None):
    # The client is not kept: a client dropped after the subscription would close its connection.
    subscriber = redis.Redis.from_url(url or settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(stream.channel_of(subscriber))
    return subscriber


def on_another_database(url):
    parts = urllib.parse.urlsplit(url)
    other = 1 + int(parts.path.strip("/") or 0)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{other % 16}"))


def test_an_announcement_reaches_a_subscriber_of_the_wakeup_channel():
    subscriber = subscribe()
    try:
        for _ in range(50):
            stream.announce()

        message = first_message(subscriber)
    finally:
        subscriber.close()

    assert message is not None and message["channel"] == stream.channel_of(stream._redis()).encode()


def test_an_installation_on_another_redis_database_of_the_same_server_is_not_woken():
    # Redis hands a PUBLISH to the subscribers of every database number: the channel names the one.
    here, elsewhere = subscribe(), subscribe(on_another_database(settings.REDIS_URL))
    try:
        for _ in range(50):
            stream.announce()
        woken_here = first_message(here)
        woken_elsewhere = first_message(elsewhere, timeout=1)
    finally:
        here.close()
        elsewhere.close()

    assert woken_here is not None
    assert woken_elsewhere is None


def test_the_announcer_survives_redis_being_unreachable_and_announces_once_it_is_back(monkeypatch):
    live = stream._redis()
    monkeypatch.setattr(stream, "_ANNOUNCE_BACKOFF_SECONDS", 0.1)
    monkeypatch.setattr(stream, "_client", redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))

    stream.announce()
    time.sleep(0.5)
    monkeypatch.setattr(stream, "_client", live)
    subscriber = subscribe()
    try:
        stream.announce()
        message = first_message(subscriber)
    finally:
        subscriber.close()

    assert message is not None


def test_a_burst_of_commits_shares_one_wakeup_per_interval():
    subscriber = subscribe()
    try:
        time.sleep(2 * stream._ANNOUNCE_INTERVAL_SECONDS)  # whatever an earlier test announced is out
        while subscriber.get_message(timeout=0.1) is not None:
            pass
        burst_seconds = 10 * stream._ANNOUNCE_INTERVAL_SECONDS
        deadline = time.monotonic() + burst_seconds
        announced = 0
        while time.monotonic() < deadline:
            stream.announce()
            announced += 1
            time.sleep(0.001)
        received = 0
        while subscriber.get_message(timeout=4 * stream._ANNOUNCE_INTERVAL_SECONDS) is not None:
            received += 1
    finally:
        subscriber.close()

    # One message per interval of the burst, plus the one in flight when it began and ended.
    assert 1 <= received <= 10 + 2 < announced
