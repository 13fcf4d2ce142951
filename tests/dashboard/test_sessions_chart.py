"""The chart of sessions over time: one bar per day (or hour) of the window, each with its count."""

import datetime
import re

import pytest
from django.utils import timezone

from orchestrator.identity.principal import Principal
from sessions import services
from sessions.models import Session

AGENT = Principal(subject="test:agent", role="finance")
BAR = re.compile(r'<rect class="bar" [^>]*data-bucket="([^"]+)" data-count="(\d+)"')


def session_created_at(when):
    session = services.create_session(principal=AGENT, role="finance", trace_id="chart")
    Session.objects.filter(pk=session.pk).update(created_at=when)


def bars(response):
    """The bars of the sessions chart (the overview also charts tasks, in its own <svg>)."""
    assert response.status_code == 200
    html = response.content.decode()
    chart = html[html.index('id="sessions-chart"') :]
    chart = chart[: chart.index("</svg>")]
    return [(datetime.datetime.fromisoformat(start), int(n)) for start, n in BAR.findall(chart)]


def test_a_week_of_daily_bars_counts_the_sessions_created_each_day(staff_client):
    today = timezone.now().astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    session_created_at(today + datetime.timedelta(minutes=1))
    for _ in range(2):
        session_created_at(today - datetime.timedelta(days=2) + datetime.timedelta(hours=5))
    session_created_at(today - datetime.timedelta(days=6))
    session_created_at(today - datetime.timedelta(days=7, minutes=1))

    chart = bars(staff_client.get("/dashboard/?days=7"))

    assert [start for start, _ in chart] == [today - datetime.timedelta(days=d) for d in range(6, -1, -1)]
    assert [n for _, n in chart] == [1, 0, 0, 0, 2, 0, 1]


def test_hourly_bars_cover_the_last_day_hour_by_hour(staff_client):
    this_hour = timezone.now().astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    session_created_at(this_hour - datetime.timedelta(hours=3) + datetime.timedelta(minutes=30))
    session_created_at(this_hour - datetime.timedelta(hours=3) + datetime.timedelta(minutes=59))
    session_created_at(this_hour - datetime.timedelta(hours=23))

    chart = bars(staff_client.get("/dashboard/?days=1&bucket=hour"))

    assert len(chart) == 24
    assert chart[-1][0] == this_hour
    counts = {start: n for start, n in chart}
    assert counts[this_hour - datetime.timedelta(hours=3)] == 2
    assert counts[this_hour - datetime.timedelta(hours=23)] == 1
    assert sum(counts.values()) == 3


def test_the_tallest_bar_is_the_busiest_day_and_empty_days_have_no_height(staff_client):
    now = timezone.now()
    for _ in range(3):
        session_created_at(now)
    session_created_at(now - datetime.timedelta(days=1))

    html = staff_client.get("/dashboard/?days=3").content.decode()
    chart = html[html.index('id="sessions-chart"') :]
    heights = [
        float(h) for h in re.findall(r'<rect class="bar" [^>]*height="([\d.]+)"', chart[: chart.index("</svg>")])
    ]

    assert heights[0] == 0
    assert heights[2] == max(heights)
    assert heights[1] == pytest.approx(heights[2] / 3, abs=0.01)


def test_the_default_chart_is_seven_daily_bars(staff_client):
    assert len(bars(staff_client.get("/dashboard/"))) == 7


@pytest.mark.parametrize("query", ["days=0", "days=91", "days=abc", "bucket=minute", "days=8&bucket=hour", "days=1e3"])
def test_bad_chart_parameters_answer_400(staff_client, query):
    assert staff_client.get(f"/dashboard/?{query}").status_code == 400
