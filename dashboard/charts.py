"""Chart data and SVG geometry for the console, computed here so templates only place shapes."""

import datetime

from django.db.models import Count
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from routing.models import Task
from sessions.models import Session, SessionStatus

CHART_WIDTH = 760
CHART_HEIGHT = 220
CHART_LEFT = 44
CHART_BOTTOM = 28
CHART_TOP = 18


# Per status, counting stops here: a count over the whole session table is a scan of it.
STATUS_COUNT_BOUND = 10_000


def sessions_by_status():
    """[(status, count, more)] for every status, zeros included; `more` when the count reached the bound."""
    result = []
    for status in SessionStatus:
        # Ordered as the (status, created_at, id) index is, so the bounded count walks that index.
        rows = Session.objects.filter(status=status).order_by("-created_at", "-id")[: STATUS_COUNT_BOUND + 1]
        n = rows.count()
        result.append((status.value, min(n, STATUS_COUNT_BOUND), n > STATUS_COUNT_BOUND))
    return result


def sessions_over_time(*, days, bucket, now=None):
    return created_over_time(Session.objects.all(), days=days, bucket=bucket, now=now)


def tasks_over_time(*, days, bucket, now=None):
    return created_over_time(Task.objects.all(), days=days, bucket=bucket, now=now)


def created_over_time(queryset, *, days, bucket, now=None):
    """[(bucket start, rows of `queryset` created in it)] for the last `days` days, oldest first, empty buckets included.

    Buckets are UTC days or hours; the newest one is the one containing `now`.
    """
    now = (now or timezone.now()).astimezone(datetime.UTC)
    if bucket == "hour":
        step = datetime.timedelta(hours=1)
        last = now.replace(minute=0, second=0, microsecond=0)
        count = days * 24
        trunc = TruncHour
    else:
        step = datetime.timedelta(days=1)
        last = now.replace(hour=0, minute=0, second=0, microsecond=0)
        count = days
        trunc = TruncDay
    first = last - step * (count - 1)
    created = dict(
        queryset.filter(created_at__gte=first, created_at__lt=last + step)
        .annotate(bucket=trunc("created_at", tzinfo=datetime.UTC))
        .order_by()
        .values_list("bucket")
        .annotate(n=Count("id"))
    )
    return [(first + step * i, created.get(first + step * i, 0)) for i in range(count)]


def bar_chart(buckets, *, bucket, noun="session"):
    """The geometry of an SVG bar chart of `buckets`, computed here so the template only places shapes."""
    plot_width = CHART_WIDTH - CHART_LEFT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    peak = max((n for _, n in buckets), default=0)
    scale_top = max(peak, 1)
    slot = plot_width / len(buckets)
    # Label about a dozen buckets at most so the axis text never overlaps.
    label_every = max(1, round(len(buckets) / 12))
    bars = []
    for index, (start, n) in enumerate(buckets):
        height = plot_height * n / scale_top
        label = start.strftime("%a %H:%M" if bucket == "hour" else "%b %d")
        bars.append(
            {
                "start": start,
                "count": n,
                "x": round(CHART_LEFT + index * slot + slot * 0.1, 2),
                "y": round(CHART_TOP + plot_height - height, 2),
                "width": round(slot * 0.8, 2),
                "height": round(height, 2),
                "center": round(CHART_LEFT + index * slot + slot / 2, 2),
                "label": label if index % label_every == 0 else "",
                "title": f"{start:%Y-%m-%d %H:%M} UTC: {n} {noun}{'' if n == 1 else 's'}",
            }
        )
    return {
        "bars": bars,
        "peak": peak,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "top": CHART_TOP,
        "baseline": CHART_TOP + plot_height,
        "label_y": CHART_HEIGHT - 8,
        "total": sum(n for _, n in buckets),
    }
