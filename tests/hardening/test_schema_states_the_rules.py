"""The OpenAPI schema states what the validators enforce, so generated clients and fuzzers send
what the API accepts: role names, UUID path ids, integer ranges, the JSON limits."""

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def parameter(schema, path, method, name):
    return next(p for p in schema["paths"][path][method]["parameters"] if p["name"] == name)


def test_role_fields_list_the_configured_roles(schema, settings):
    components = schema["components"]["schemas"]

    assert components["SessionInRequest"]["properties"]["role"]["enum"] == settings.ORCHESTRATOR_ROLES
    assert parameter(schema, "/api/v1/tasks/claim-next", "post", "to_role")["schema"]["enum"] == (
        settings.ORCHESTRATOR_ROLES
    )


def test_object_ids_in_paths_are_uuids(schema):
    assert parameter(schema, "/api/v1/sessions/{session_id}", "get", "session_id")["schema"]["format"] == "uuid"
    assert parameter(schema, "/api/v1/tasks/{task_id}", "get", "task_id")["schema"]["format"] == "uuid"


def test_every_write_documents_the_kill_switchs_423_and_no_read_does(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            documented = "423" in operation["responses"]
            assert documented == (method in ("post", "put", "patch", "delete")), (method, path)


def test_free_form_json_fields_state_the_input_limits(schema):
    metadata = schema["components"]["schemas"]["SessionInRequest"]["properties"]["metadata"]

    assert "JSON_MAX_DEPTH (32)" in metadata["description"]


def test_a_method_a_view_does_not_offer_is_405_even_with_an_idempotency_key(finance):
    response = finance.put("/api/v1/tasks/claim-next?to_role=finance", HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 405
    assert finance.post("/api/v1/tasks/claim-next?to_role=finance", HTTP_IDEMPOTENCY_KEY="k-1").status_code in (
        200,
        204,
    )


@pytest.mark.parametrize("tool", [0, 1.5, True, ["search"], {"name": "search"}])
def test_a_number_or_anything_else_where_the_schema_says_string_is_a_400_not_its_text(finance, tool):
    # DRF's CharField would take 0 as the text "0" (found by a random `make fuzz` run, seed 2932617986).
    response = finance.post("/api/v1/policy/check", {"tool": tool, "arguments": {}}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"]["tool"]


@pytest.mark.parametrize("chain", [[0], ["operations", 1.5], [True], [["operations"]], [{"role": "operations"}]])
def test_an_item_that_is_not_text_in_a_list_of_strings_is_a_400_not_its_text(finance, chain):
    # Without the item check, DRF's child CharField would take 0 as the role "0" and name it unknown.
    response = finance.post(
        "/api/v1/approvals",
        {"task_id": "00000000-0000-4000-8000-000000000001", "approver_role": "manager", "escalate_to": chain},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert response.json()["errors"]["escalate_to"] == ["Every item must be a string."]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("priority", "50", "Must be an integer."),
        ("priority", True, "Must be an integer."),
        ("max_attempts", "2", "Must be an integer."),
        ("requires_approval", "yes", "Must be true or false."),
        ("requires_approval", 1, "Must be true or false."),
        ("requires_approval", "true", "Must be true or false."),
    ],
)
def test_a_string_where_the_schema_says_integer_or_boolean_is_a_400_not_its_value(finance, field, value, reason):
    # DRF's IntegerField takes "50" as 50 and its BooleanField "yes" as true (found by an outside review).
    body = {"type": "invoice", "to_role": "manager", "payload": {}, field: value}
    response = finance.post("/api/v1/tasks/route", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"][field] == [reason]


def test_an_integer_written_with_a_zero_fraction_is_still_an_integer(finance):
    # JSON Schema counts 5.0 as an integer; clients that write every number as a float are not refused.
    response = finance.post(
        "/api/v1/tasks/route", {"type": "invoice", "to_role": "manager", "payload": {}, "priority": 5.0}, format="json"
    )

    assert response.status_code == 202, response.content


def test_query_parameters_are_text_and_their_numbers_and_booleans_are_parsed(finance):
    response = finance.get("/api/v1/tasks", {"to_role": "finance", "dead_letter": "true", "limit": "5"})

    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/sessions", {"role": "finance", "task_id": 5}),
        ("/api/v1/approvals", {"task_id": 5, "approver_role": "manager"}),
    ],
)
def test_a_number_where_a_uuid_belongs_is_a_400_not_the_uuid_it_would_make(finance, path, body):
    # DRF's UUIDField takes 5 as 00000000-0000-0000-0000-000000000005 (found by an outside review).
    response = finance.post(path, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"]["task_id"] == ["Must be a string."]


def test_a_text_longer_than_the_schema_allows_is_a_400_even_when_it_is_mostly_whitespace(finance):
    # DRF trims before its length check (found by a random `make fuzz` run, seed 710255958).
    task_id = finance.post("/api/v1/tasks/route", {"type": "t", "to_role": "engineering"}, format="json").json()[
        "task_id"
    ]

    padded = finance.post(f"/api/v1/tasks/{task_id}/cancel", {"reason": "late" + " " * 10_000}, format="json")
    at_the_limit = finance.post(f"/api/v1/tasks/{task_id}/cancel", {"reason": "x" * 10_000}, format="json")

    assert padded.status_code == 400
    assert padded.json()["errors"]["reason"] == ["Ensure this field has no more than 10000 characters."]
    assert at_the_limit.status_code == 200, at_the_limit.content
