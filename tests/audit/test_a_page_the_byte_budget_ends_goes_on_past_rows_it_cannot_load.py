"""A page of the audit log that the byte budget ends (LIST_PAGE_MAX_BYTES) and that holds a row edited
past what the application loads still says where the next page starts: its rows, loaded one by one
then, carry the page's counts too. Without them the list answered 500 from that page on."""


def test_the_list_names_the_unreadable_row_and_every_page_follows(staff, large_events, attacker):
    newest_first = large_events[::-1]
    edited = newest_first[1]
    attacker("UPDATE audit_auditevent SET metadata = '{\"n\": 1e5000}' WHERE id = %s", [edited])
    seen, unreadable, cursor = [], [], ""
    while cursor is not None:
        response = staff.get(f"/api/v1/audit?event_type=large.thing&limit=200&cursor={cursor}")
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [event["event_id"] for event in body["events"]]
        unreadable += [event["event_id"] for event in body.get("unreadable_events", [])]
        cursor = body["next_cursor"]

    assert unreadable == [edited]
    assert seen == [event_id for event_id in newest_first if event_id != edited]
