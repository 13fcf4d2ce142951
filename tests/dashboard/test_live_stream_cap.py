"""The console's live stream (/dashboard/live) holds the same per-caller slots as GET
/api/v1/audit/stream: a signed-in person cannot hold every server thread by opening tabs."""

from audit.stream import stream_slots


def close_body(response):
    # What the server does when it closes the response, without Django's request_finished signal
    # (which would close the test's database connection inside its transaction).
    for closer in response._resource_closers:
        closer()


def test_past_the_cap_a_person_gets_429_on_the_live_stream_until_one_is_closed(staff_client, staff_user, settings):
    settings.AUDIT_STREAM_MAX_PER_PRINCIPAL = 1
    subject = f"user:{staff_user.get_username()}"
    first = staff_client.get("/dashboard/live")
    try:
        assert first.status_code == 200
        assert stream_slots.held(subject) == 1
        refused = staff_client.get("/dashboard/live")
        assert refused.status_code == 429
        assert refused["Retry-After"]
    finally:
        close_body(first)
    assert stream_slots.held(subject) == 0
    again = staff_client.get("/dashboard/live")
    assert again.status_code == 200
    close_body(again)
