"""Schemathesis drives the session endpoints from the generated OpenAPI schema: no 5xx, no schema violations."""

import pytest

from tests.fuzzing import EXCLUDED_CHECKS, api_schema, fuzz_settings

# The fixtures come from tests.fuzzing (a plugin, see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("keep_the_test_connection")

schema = api_schema(r"^/api/v1/sessions")


@schema.parametrize()
@fuzz_settings
def test_session_endpoints_never_answer_5xx_or_break_their_schema(case, staff_authorization):
    case.call_and_validate(headers={"Authorization": staff_authorization}, excluded_checks=EXCLUDED_CHECKS)
