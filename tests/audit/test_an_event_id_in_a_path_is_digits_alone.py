"""An audit event's id in a path is ASCII digits and nothing else. `^...$` matched before a final
newline, and int() reads "5\\n" as 5, so /audit/5%0A answered event 5 (an outside review)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("suffix", ["%0A", "%0D%0A", "%20", "%09", "_"])
def test_an_id_with_anything_after_its_digits_is_not_found(staff, suffix):
    staff.post("/api/v1/sessions", {"role": "operations"}, format="json")
    event_id = staff.get("/api/v1/audit").json()["events"][0]["event_id"]

    assert staff.get(f"/api/v1/audit/{event_id}").status_code == 200
    response = staff.get(f"/api/v1/audit/{event_id}{suffix}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
