"""Hostile X-Trace-Id, traceparent and tracestate headers: never a 500, never an injected response
header; the traceparent's trace id is the request's when X-Trace-Id is absent or unusable."""

import re

import pytest

from audit.models import AuditEvent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def header_values(response):
    return [value for _, value in response.items()]


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_TRACE_ID": "abc\r\nSet-Cookie: owned=1"},
        {"HTTP_X_TRACE_ID": "abc\nX-Injected: 1"},
        {"HTTP_X_TRACE_ID": "a" * 129},
        {"HTTP_X_TRACE_ID": "trace id with spaces"},
        {"HTTP_X_TRACE_ID": "ünïcødé"},
        {"HTTP_X_TRACE_ID": "\xff\xfe"},
        {"HTTP_X_TRACE_ID": "abc\x00def"},
        {"HTTP_TRACEPARENT": f"01-{TRACE_ID}-{PARENT_ID}-01-\r\nSet-Cookie: owned=1"},
        {"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{PARENT_ID}-01\r\n"},
        {"HTTP_TRACEPARENT": "\xff" * 55},
        {"HTTP_TRACEPARENT": TRACEPARENT, "HTTP_TRACESTATE": "a=b\r\nSet-Cookie: owned=1"},
        {"HTTP_TRACEPARENT": TRACEPARENT, "HTTP_TRACESTATE": ",".join(f"k{n}=" + "v" * 256 for n in range(33))},
        {"HTTP_TRACEPARENT": TRACEPARENT, "HTTP_TRACESTATE": "a=" + "\xff" * 300},
        {"HTTP_TRACEPARENT": TRACEPARENT, "HTTP_TRACESTATE": "=" * 8192},
    ],
)
def test_hostile_trace_headers_never_fail_a_request_nor_reach_a_response_header(anonymous, finance, db, headers):
    for response in (
        finance.post("/api/v1/sessions", {"role": "finance"}, format="json", **headers),
        anonymous.get("/api/v1/health/live", **headers),
        anonymous.get("/no/such/page", **headers),
    ):
        assert response.status_code in (201, 200, 404), response.content
        for value in header_values(response):
            assert "\r" not in value and "\n" not in value and "owned" not in value
        assert re.fullmatch(r"[A-Za-z0-9._:\-]{1,128}", response["X-Trace-Id"])
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", response["traceparent"])
        assert "Set-Cookie" not in response or "owned" not in response["Set-Cookie"]


def test_without_x_trace_id_the_traceparent_trace_id_is_the_audit_trace_id_even_next_to_a_bad_x_trace_id(finance):
    for extra in ({}, {"HTTP_X_TRACE_ID": "bad value\n"}, {"HTTP_X_TRACE_ID": ""}):
        response = finance.post(
            "/api/v1/sessions", {"role": "finance"}, format="json", HTTP_TRACEPARENT=TRACEPARENT, **extra
        )

        assert response.status_code == 201
        assert response["X-Trace-Id"] == TRACE_ID
        assert response["traceparent"].split("-")[1] == TRACE_ID
        event = AuditEvent.objects.get(event_type="session.created", target_id=response.json()["session_id"])
        assert event.trace_id == TRACE_ID


def test_a_later_traceparent_version_with_trailing_fields_is_answered_with_a_clean_version_00(finance):
    response = finance.get("/api/v1/sessions", HTTP_TRACEPARENT=f"cc-{TRACE_ID}-{PARENT_ID}-01-what-ever\tfield")

    assert response.status_code == 200
    version, trace_id, span_id, flags = response["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id != PARENT_ID
