"""Schemathesis over the generated OpenAPI schema, shared by the per-area fuzz modules.

Checks every answer for 5xx and against its documented status, content type, headers and body
schema. The schema states role names, UUID ids, integer ranges and the JSON limits
(orchestrator/http/schema.py), so generated input is mostly valid; positive_data_acceptance is
still left out here because what no JSON Schema can state is rightly refused with a 400 problem
(an opaque cursor that no page handed out, a body naming an object that does not exist, a
cross-field rule such as until > since). `make fuzz` runs it with random seeds (docs/api.md).
"""

import orjson
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from orchestrator.wsgi import application

EXCLUDED_CHECKS = [positive_data_acceptance]
# Derandomized and without the example database: every run, here or in CI, tries the same cases.
fuzz_settings = settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
# A body over the size limit is refused with 413, which is a rejection like 400.
FUZZ_CONFIG = SchemathesisConfig.from_str(
    """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]
"""
)


def api_schema(path_regex):
    raw = orjson.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    # Every call carries a staff token (staff_authorization). Left in, the security requirement makes
    # schemathesis send "missing Authorization" cases that the token then overrides, and report
    # their success as accepted invalid data; authentication has its own tests.
    for operations in raw["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    raw.get("components", {}).pop("securitySchemes", None)
    schema = schemathesis.openapi.from_dict(raw, config=FUZZ_CONFIG).include(path_regex=path_regex)
    schema.app = application
    return schema


@pytest.fixture
def staff_authorization(make_agent):
    return make_agent("finance", staff=True)._credentials["HTTP_AUTHORIZATION"]


@pytest.fixture
def keep_the_test_connection():
    """Django closes connections at request end; inside the test's transaction that would end the test's
    database session. Django's own test client suspends the same signal handlers."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
