"""OpenAPI details drf-spectacular cannot infer: the bearer scheme, the common headers and the problem responses."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from orchestrator.http.json_limits import INT64_MAX, JSON_INT_MIN


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "orchestrator.identity.authentication.BearerAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A local API token (manage.py issue_token) or an OIDC access token (JWT).",
        }


PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "current_status": {"type": "string"},
        "allowed_transitions": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["type", "title", "status", "detail"],
}

_PROBLEMS = {
    "400": "Malformed input: bad JSON, wrong types, unknown fields, bad parameters.",
    "401": "No or bad credentials.",
    "403": "Not allowed for this caller's role.",
    "404": "Not found, or owned by another role.",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "409": "Invalid transition or conflicting state; names the current status and the allowed targets.",
    "412": "If-Match does not match.",
    "413": "Request body too large.",
    "415": "Unsupported media type.",
    "422": "Idempotency-Key reused with another request.",
    "423": "The role this write acts for is paused (the kill switch): its writes are refused until staff resume it.",
    "503": "Database unavailable.",
}
_UNSAFE = {"post", "put", "patch", "delete"}


def _forbid_unknown_request_fields(result):
    """Inputs go through StrictSerializer, which refuses unknown fields; the schema says so."""
    schemas = result.get("components", {}).get("schemas", {})
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                component = schemas.get(ref.rsplit("/", 1)[-1])
                if component is not None and component.get("type") == "object":
                    component["additionalProperties"] = False


IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retried request take effect once; see docs/idempotency.md.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
}
TRACE_ID_PARAMETER = {
    "name": "X-Trace-Id",
    "in": "header",
    "required": False,
    # Not a constraint: a value that is not 1-128 of [A-Za-z0-9._:-], or is dots alone, is replaced,
    # never refused.
    "description": "Ties calls and their audit events together; echoed back. Absent or not 1-128 "
    "characters of [A-Za-z0-9._:-], or only dots, a fresh one is generated.",
    "schema": {"type": "string"},
}


def _document_headers(result):
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            parameters = operation.setdefault("parameters", [])
            parameters.append(TRACE_ID_PARAMETER)
            if method in _UNSAFE and method != "delete":
                parameters.append(IDEMPOTENCY_KEY_PARAMETER)


# Every field and parameter with one of these names holds a role, checked against ORCHESTRATOR_ROLES
# (identity.roles) wherever it is accepted; the schema names the roles, so clients can only send one.
ROLE_NAMES = {"role", "to_role", "from_role", "approver_role", "author_role"}
# Path ids that must be UUIDs (parse_uuid); audit's event_id is an integer and stays as declared.
UUID_PATH_PARAMETERS = {"session_id", "task_id", "approval_id", "notification_id"}


def _constrain_role(schema):
    if schema.get("type") == "string" and "enum" not in schema:
        schema["enum"] = list(settings.ORCHESTRATOR_ROLES)
        schema.pop("maxLength", None)
        schema.pop("minLength", None)


def _constrain_json(schema):
    """Free-form JSON (an object of anything, or any value) within the parser's limits: integers
    in 64 bits. The depth and U+0000 limits are in the description; JSON Schema cannot say them."""
    note = (
        f"Any JSON within the input limits: nested at most JSON_MAX_DEPTH ({settings.JSON_MAX_DEPTH}) "
        "levels per request body, no U+0000, numbers within the signed 64-bit range."
    )
    schema["description"] = (schema.get("description", "") + " " + note).strip()


def _walk_properties(schema):
    for name, prop in schema.get("properties", {}).items():
        if name in ROLE_NAMES:
            _constrain_role(prop)
        if _is_free_json(prop):
            _constrain_json(prop)


def _is_free_json(schema):
    if any(key in schema for key in ("$ref", "allOf", "oneOf", "anyOf", "enum")):
        return False
    return "type" not in schema or (schema["type"] == "object" and "properties" not in schema)


def _state_the_validators(result):
    """What the validators enforce, stated in the schema: role names, UUID path ids, JSON limits."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        # Input components only: stored values (a role since removed from the configuration)
        # are answered as they are.
        if name.endswith("Request"):
            _walk_properties(component)
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.setdefault("schema", {})
                # A role that names what to change is checked; a role in a GET filter only filters.
                if parameter.get("name") in ROLE_NAMES and method in _UNSAFE:
                    _constrain_role(schema)
                if parameter.get("in") == "path" and parameter.get("name") in UUID_PATH_PARAMETERS:
                    schema.update({"type": "string", "format": "uuid"})
                if schema.get("type") == "integer":
                    schema.setdefault("maximum", INT64_MAX)
                    schema.setdefault("minimum", JSON_INT_MIN)


def add_problem_responses(result, generator, request, public):
    _forbid_unknown_request_fields(result)
    _state_the_validators(result)
    _document_headers(result)
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    reference = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code, description in _PROBLEMS.items():
                if code in ("412", "413", "415", "422", "423") and method not in _UNSAFE:
                    continue
                if code == "401" and operation.get("security") == [{}]:
                    continue
                responses.setdefault(code, {"description": description, "content": reference})
    return result
