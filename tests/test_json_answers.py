"""An API view's answer (JsonAnswer) is what DRF's Response gives once FastJSONRenderer renders it."""

import datetime
import decimal
import uuid

import pytest
from rest_framework.response import Response

from orchestrator.http.renderers import FastJSONRenderer, JsonAnswer

SAMPLES = [
    ({"session_id": uuid.UUID(int=7), "at": datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC)}, 200, None),
    ({"amount": decimal.Decimal("1.10"), "items": [1, "two", None]}, 201, {"Location": "/api/v1/x", "ETag": '"1"'}),
    ([], 202, None),
    (None, 204, None),
    ({"status": "unavailable"}, 503, {"Retry-After": "5"}),
]


def rendered_by_drf(data, status, headers):
    response = Response(data, status=status, headers=headers)
    response.accepted_renderer = FastJSONRenderer()
    response.accepted_media_type = FastJSONRenderer.media_type
    response.renderer_context = {}
    return response.render()


@pytest.mark.parametrize(("data", "status", "headers"), SAMPLES)
def test_an_answer_has_the_status_body_and_headers_drf_would_give(data, status, headers):
    ours = JsonAnswer(data, status=status, headers=headers)
    drf = rendered_by_drf(data, status, headers)

    assert ours.status_code == drf.status_code
    assert ours.content == drf.content
    assert dict(ours.items()) == dict(drf.items())


def test_an_empty_answer_names_no_media_type():
    assert not JsonAnswer(status=204).has_header("Content-Type")


def test_a_read_answers_json_with_the_views_allow_header(finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    response = finance.get(f"/api/v1/sessions/{session_id}")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == "GET, PUT, PATCH, HEAD, OPTIONS"
    assert response.json()["session_id"] == session_id
