"""Content negotiation: the fast path for "accepts anything" answers exactly as DRF's own would."""


def test_a_request_without_accept_header_gets_json(finance):
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json")

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"


def test_a_request_accepting_anything_gets_json(finance):
    response = finance.get("/api/v1/sessions", HTTP_ACCEPT="*/*")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_a_request_accepting_json_with_a_quality_gets_json(finance):
    response = finance.get("/api/v1/sessions", HTTP_ACCEPT="text/html;q=0.9, application/json;q=0.8")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")


def test_a_request_accepting_only_html_gets_a_406_problem(finance):
    response = finance.get("/api/v1/sessions", HTTP_ACCEPT="text/html")

    assert response.status_code == 406
    assert response["Content-Type"] == "application/problem+json"


def test_the_schema_without_accept_header_is_served_in_its_first_format(anonymous):
    response = anonymous.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")


def test_a_format_named_in_the_query_string_is_still_honoured(finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    assert finance.get(f"/api/v1/sessions/{session_id}?format=json").status_code == 200
    # DRF's answer to a format it cannot render: not found.
    unknown = finance.get(f"/api/v1/sessions/{session_id}?format=html")
    assert unknown.status_code == 404
    assert unknown["Content-Type"] == "application/problem+json"
