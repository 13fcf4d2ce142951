"""A query string's integer is written in ASCII digits. DRF read it with int(), which takes any
script's digits and underscores, so `limit=١٠` and `limit=1_0` were a page of ten while the schema
states an integer; they are a 400 naming the parameter now."""

import pytest


@pytest.mark.parametrize("written", ["١٠", "1_0", "１０", "10.0", " 10", "1e1", ""])
def test_an_integer_not_in_ascii_digits_is_a_400_naming_the_parameter(finance, written):
    response = finance.get("/api/v1/tasks", {"limit": written})

    assert response.status_code == 400, response.content
    assert "limit" in response.json()["errors"]


@pytest.mark.parametrize("written", ["10", "+10", "007"])
def test_ascii_digits_are_read(finance, written):
    response = finance.get("/api/v1/tasks", {"limit": written})

    assert response.status_code == 200, response.content


def test_a_range_is_still_checked_after_the_digits(finance):
    assert finance.get("/api/v1/tasks", {"limit": "-1"}).status_code == 400
