"""not_before and deadline must name their zone. DRF read a time without one in the server's zone, so a
sender whose clock is elsewhere had its times shifted without a word (an outside review); such a time
is a 400 naming the field, and nothing is routed."""

import pytest

from routing.models import Task


@pytest.mark.parametrize("field", ["not_before", "deadline"])
def test_a_time_without_a_zone_is_a_400_and_routes_nothing(finance, field):
    response = finance.post(
        "/api/v1/tasks/route",
        {"type": "t", "to_role": "engineering", field: "2100-01-01T00:00:00"},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert "time zone" in str(response.json()["errors"][field])
    assert not Task.objects.exists()


@pytest.mark.parametrize("written", ["2100-01-01T00:00:00Z", "2100-01-01T02:00:00+02:00"])
def test_a_time_with_a_zone_is_taken_as_that_instant(finance, written):
    response = finance.post(
        "/api/v1/tasks/route", {"type": "t", "to_role": "engineering", "not_before": written}, format="json"
    )

    assert response.status_code == 202, response.content
    assert Task.objects.get().not_before.isoformat() == "2100-01-01T00:00:00+00:00"
