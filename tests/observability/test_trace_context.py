"""W3C Trace Context: traceparent and tracestate are parsed strictly; a bad one is ignored, never an error."""

import pytest

from audit.models import AuditEvent
from orchestrator.http.tracing import parse_traceparent, parse_tracestate
from tests.observability.conftest import request_lines, start_gunicorn, stop

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"


def test_a_version_00_traceparent_gives_its_trace_id_parent_id_and_flags():
    parsed = parse_traceparent(VALID)

    assert (parsed.trace_id, parsed.parent_id, parsed.flags) == (TRACE_ID, PARENT_ID, "01")


@pytest.mark.parametrize(
    "header",
    [
        "",
        "00",
        VALID.upper(),
        f"00-{TRACE_ID}-{PARENT_ID}-1",
        f"00-{TRACE_ID}-{PARENT_ID}-01-extra",
        f"00-{TRACE_ID}-{PARENT_ID}-01 ",
        f"00-{'0' * 32}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"ff-{TRACE_ID}-{PARENT_ID}-01",
        f"0g-{TRACE_ID}-{PARENT_ID}-01",
        f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",
        f"00_{TRACE_ID}_{PARENT_ID}_01",
        f"01-{TRACE_ID}-{PARENT_ID}-01x",
        f"00-{TRACE_ID}-{PARENT_ID}-01,00-{TRACE_ID}-{PARENT_ID}-01",
        "00-" + "é" * 32 + f"-{PARENT_ID}-01",
    ],
)
def test_a_malformed_traceparent_is_refused(header):
    assert parse_traceparent(header) is None


def test_a_later_version_is_read_for_the_fields_we_know():
    assert parse_traceparent(f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-brings").trace_id == TRACE_ID
    assert parse_traceparent(f"cc-{TRACE_ID}-{PARENT_ID}-01").trace_id == TRACE_ID


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("congo=t61rcWkgMzE", "congo=t61rcWkgMzE"),
        ("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ("tenant@vendor=x,,other=y", "tenant@vendor=x,other=y"),
        ("UPPER=x", ""),
        ("a=b,a=c", ""),
        ("novalue", ""),
        ("k=bad,comma=", ""),
        ("k=v=w", ""),
        (",".join(f"k{n}=v" for n in range(33)), ""),
    ],
)
def test_tracestate_is_kept_only_when_well_formed(header, expected):
    assert parse_tracestate(header) == expected


def test_x_trace_id_wins_over_the_traceparent_and_the_traceparent_still_continues(finance):
    response = finance.post(
        "/api/v1/sessions", {"role": "finance"}, format="json", HTTP_X_TRACE_ID="order-42", HTTP_TRACEPARENT=VALID
    )

    assert response.status_code == 201
    assert response["X-Trace-Id"] == "order-42"
    assert response["traceparent"].startswith(f"00-{TRACE_ID}-")
    assert AuditEvent.objects.get(target_id=response.json()["session_id"]).trace_id == "order-42"


@pytest.mark.parametrize(("sent", "sent_on"), [("01", "01"), ("00", "00"), ("ff", "01"), ("02", "00"), ("fe", "00")])
def test_only_the_sampled_flag_is_sent_on_the_undefined_flag_bits_as_zero(finance, sent, sent_on):
    response = finance.get("/api/v1/sessions", HTTP_TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-{sent}")

    version, trace_id, span_id, flags = response["traceparent"].split("-")
    assert (trace_id, flags) == (TRACE_ID, sent_on)


@pytest.mark.django_db(transaction=True)
def test_a_static_file_carries_the_trace_headers_without_a_request_line(tmp_path):
    static_root = tmp_path / "static"
    static_root.mkdir()
    (static_root / "probe.css").write_text("body {}")
    process, server = start_gunicorn(tmp_path, workers=1, STATIC_ROOT=str(static_root))
    try:
        served = server.request("GET", "/static/probe.css", headers={"traceparent": VALID})
        marker = server.request("GET", "/api/v1/health/live", headers={"X-Trace-Id": "after-the-static-file"})
        lines = server.log_lines_once(lambda lines: any("after-the-static-file" in line for line in lines))
    finally:
        stop(process)

    assert served.status == 200 and served.body == b"body {}" and marker.status == 200
    assert served.headers["x-trace-id"] == TRACE_ID
    assert served.headers["traceparent"].startswith(f"00-{TRACE_ID}-")
    logged = request_lines(lines)
    assert any(line["trace_id"] == "after-the-static-file" for line in logged)
    assert not any(line["trace_id"] == TRACE_ID for line in logged)


def test_without_any_trace_header_the_fresh_trace_id_is_also_the_traceparent_trace_id(finance):
    response = finance.get("/api/v1/sessions")

    assert response.status_code == 200
    version, trace_id, span_id, flags = response["traceparent"].split("-")
    assert trace_id == response["X-Trace-Id"] and len(trace_id) == 32
    assert (version, flags) == ("00", "00")


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_TRACEPARENT": "garbage"},
        {"HTTP_TRACEPARENT": "00-" + "x" * 5000},
        {"HTTP_TRACEPARENT": VALID, "HTTP_TRACESTATE": "\x00bad" * 100},
        {"HTTP_TRACESTATE": "congo=t61rcWkgMzE"},
    ],
)
def test_bad_trace_headers_never_fail_a_request(finance, headers):
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json", **headers)

    assert response.status_code == 201
    assert len(response["X-Trace-Id"]) == 32
