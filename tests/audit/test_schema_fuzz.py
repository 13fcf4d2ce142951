"""Schemathesis drives the audit query endpoints from the generated OpenAPI schema: no 5xx, no schema
violations. The stream is left out: each call would hold the test for the stream's whole lifetime."""

import pytest

from orchestrator.identity.principal import Principal
from sessions import services
from tests.fuzzing import EXCLUDED_CHECKS, api_schema, fuzz_settings

# The fixtures come from tests.fuzzing (a plugin, see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("keep_the_test_connection")

schema = api_schema(r"^/api/v1/audit(/\{[^}/]+\})?$")


@pytest.fixture
def existing_events(db):
    """Real events, so list and detail answers are checked against the schema with content."""
    agent = Principal(subject="test:fuzz", role="finance")
    for _ in range(3):
        session = services.create_session(principal=agent, role="finance", trace_id="fuzz", metadata={"k": [1]})
        services.transition_session(principal=agent, session_id=session.pk, target_status="active", trace_id="fuzz")


@schema.parametrize()
@fuzz_settings
def test_audit_query_endpoints_never_answer_5xx_or_break_their_schema(case, staff_authorization, existing_events):
    case.call_and_validate(headers={"Authorization": staff_authorization}, excluded_checks=EXCLUDED_CHECKS)
