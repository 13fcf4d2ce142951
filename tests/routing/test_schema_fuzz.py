"""Schemathesis drives the task, approval and notification endpoints from the generated OpenAPI
schema: no 5xx, and every answer matches its documented status, content type and schema."""

import pytest

from notifications import services as notifications
from orchestrator.identity.principal import Principal
from routing import services
from tests.fuzzing import EXCLUDED_CHECKS, api_schema, fuzz_settings

# The fixtures come from tests.fuzzing (a plugin, see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("keep_the_test_connection")

schema = api_schema(r"^/api/v1/(tasks|approvals|notifications)")


@pytest.fixture
def existing_objects(db):
    """Real rows in every state the lists show, so list answers are checked against the schema with content."""
    sender = Principal(subject="test:fuzz", role="finance")
    for _ in range(2):
        services.route_task(principal=sender, type="t", to_role="finance", payload={"k": [1]}, trace_id="fuzz")
        services.route_task(
            principal=sender,
            type="t",
            to_role="finance",
            trace_id="fuzz",
            requires_approval=True,
            approver_role="manager",
        )
        notifications.send_notification(principal=sender, to_role="finance", message="m", trace_id="fuzz")
    services.claim_next_task(principal=sender, trace_id="fuzz")


@schema.parametrize()
@fuzz_settings
def test_routing_endpoints_never_answer_5xx_or_break_their_schema(case, staff_authorization, existing_objects):
    case.call_and_validate(headers={"Authorization": staff_authorization}, excluded_checks=EXCLUDED_CHECKS)
