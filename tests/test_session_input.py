"""POST /sessions validates its body by hand (sessions.api.session_input) for speed; it must
accept and refuse exactly what the SessionIn serializer, which the schema shows, does."""

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from orchestrator.http.views import validated
from sessions.api import SessionIn, session_input

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
roles = (
    st.sampled_from(
        ["finance", " manager ", "", "   ", "x" * 64, "x" * 65, "x" * 64 + " ", " " * 70, "fin\x00ance", "role\ud800"]
    )
    | json_values
)
task_ids = (
    st.uuids().map(str)
    | st.uuids().map(lambda value: value.hex)
    | st.uuids().map(lambda value: "{" + str(value) + "}")
    | st.integers(min_value=-5, max_value=2**129)
    | json_values
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "role": roles,
        "task_id": task_ids,
        "metadata": json_values | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        "stauts": json_values,
    },
)


def outcome(check, data):
    try:
        return "ok", dict(check(data))
    except ValidationError as exc:
        detail = exc.detail
        return "refused", sorted(detail) if isinstance(detail, dict) else detail


@settings(max_examples=500, deadline=None, derandomize=True)
@given(data=bodies | json_values)
def test_the_hand_validation_agrees_with_the_serializer_on_any_input(data):
    assert outcome(session_input, data) == outcome(lambda value: validated(SessionIn, value), data)


@pytest.mark.parametrize(
    "data,expected",
    [
        ({"role": " finance "}, {"role": "finance"}),
        (
            {"role": "finance", "task_id": None, "metadata": {"k": [1]}},
            {"role": "finance", "task_id": None, "metadata": {"k": [1]}},
        ),
        (
            {"role": "finance", "task_id": "12345678123456781234567812345678"},
            {"role": "finance", "task_id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
        ),
    ],
)
def test_valid_bodies_come_out_cleaned(data, expected):
    assert session_input(data) == expected


@pytest.mark.parametrize(
    "data,fields",
    [
        ({}, ["role"]),
        ({"role": None}, ["role"]),
        ({"role": 42.5, "metadata": []}, ["metadata", "role"]),
        ({"role": True, "task_id": "nope", "metadata": None}, ["metadata", "role", "task_id"]),
        ({"role": "finance", "stauts": "active"}, ["stauts"]),
        ([{"role": "finance"}], ["non_field_errors"]),
    ],
)
def test_bad_bodies_name_every_bad_field(data, fields):
    with pytest.raises(ValidationError) as refused:
        session_input(data)

    assert sorted(refused.value.detail) == fields
