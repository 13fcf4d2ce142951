"""Schemathesis drives the session endpoints from the generated OpenAPI schema: no 5xx, no schema violations."""

from tests.fuzzing import EXCLUDED_CHECKS, api_schema, fuzz_settings, keep_the_test_connection, staff_authorization  # noqa: F401

schema = api_schema(r"^/api/v1/sessions")


@schema.parametrize()
@fuzz_settings
def test_session_endpoints_never_answer_5xx_or_break_their_schema(case, staff_authorization):
    case.call_and_validate(headers={"Authorization": staff_authorization}, excluded_checks=EXCLUDED_CHECKS)
