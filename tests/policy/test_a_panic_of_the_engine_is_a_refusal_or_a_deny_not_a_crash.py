"""A panic of the CEL engine's Rust code is a refusal at load and a deny (403 policy_error) at run
time, like any other error of the engine. Found by an outside review: a syntax error past column
65535 made the engine panic formatting its message, and pyo3 raises a panic as
pyo3_runtime.PanicException, a BaseException that `except Exception` around cel.compile let through:
a traceback from load_profiles, a 500 from the admin. MAX_WHEN_LENGTH now keeps every rule short of
that column; the engine is still never trusted not to panic elsewhere."""

import dataclasses

import cel
import pytest

from audit.models import AuditEvent
from policy import services
from tests.policy.conftest import FINANCE

PAST_COLUMN_65535 = "action.tool == " + " " * 70000 + "1 +)"


def engine_panic():
    try:
        cel.compile(PAST_COLUMN_65535)
    except BaseException as panic:  # noqa: BLE001 (the panic itself, to raise where the engine could)
        assert type(panic).__name__ == "PanicException" and not isinstance(panic, Exception)
        return panic
    raise AssertionError("the engine no longer panics on this: find another panic for these tests")


def profile(when):
    return {**FINANCE, "rules": [{"id": "panics", "when": when, "effect": "deny"}]}


def test_a_syntax_error_past_column_65535_is_refused_for_its_length(db):
    with pytest.raises(services.ProfileRefused, match="'when' is 70019 characters long") as refused:
        services.validate_document(profile(PAST_COLUMN_65535), source="finance.yaml")
    assert refused.value.rule_id == "panics"


def test_the_engine_panicking_on_a_rule_is_a_refusal_naming_it(db, monkeypatch):
    monkeypatch.setattr(services, "MAX_WHEN_LENGTH", 100_000, raising=False)

    with pytest.raises(services.ProfileRefused, match="'when' does not compile: the CEL engine failed") as refused:
        services.validate_document(profile(PAST_COLUMN_65535), source="finance.yaml")
    assert (refused.value.source, refused.value.rule_id) == ("finance.yaml", "panics")


def test_the_engine_panicking_on_the_negation_check_is_a_refusal(db, monkeypatch):
    when = 'action.tool == "pay-invoice"'  # a '-' in a string: the check compiles the rule again, masked
    compile_rule = cel.compile
    panic = engine_panic()

    def panicking_on_the_masked_rule(source):
        if source != when:
            raise panic
        return compile_rule(source)

    monkeypatch.setattr(cel, "compile", panicking_on_the_masked_rule)

    with pytest.raises(services.ProfileRefused, match="cannot be read well enough"):
        services.validate_document(profile(when))


class PanickingProgram:
    def __init__(self, program):
        self.program = program

    def variables(self):
        return self.program.variables()

    def execute(self, bindings):
        raise engine_panic()


def check(agent):
    return agent.post("/api/v1/policy/check", {"tool": "pay_invoice", "arguments": {"amount": 5}}, format="json")


def assert_denied_by_a_policy_error(response, rule):
    assert response.status_code == 403, response.content
    problem = response.json()
    assert problem["type"].endswith("/policy_error")
    assert (problem["rule"], problem["decision"]) == (rule, "deny")
    error = AuditEvent.objects.get(event_type="policy.error")
    assert error.metadata["rule"] == rule and "the CEL engine failed" in error.metadata["error"]


def test_a_rule_the_engine_panics_on_when_it_runs_denies_with_a_policy_error(finance, load_profile, monkeypatch):
    version = load_profile(FINANCE)
    compiled = services.compiled_profile(version)
    panicking = tuple(dataclasses.replace(rule, program=PanickingProgram(rule.program)) for rule in compiled.rules)
    # The compiled version this process serves, as if its programs panicked.
    monkeypatch.setitem(
        services._compiled, (version.pk, version.digest), dataclasses.replace(compiled, rules=panicking)
    )

    assert_denied_by_a_policy_error(check(finance), "large-invoice")


def test_the_engine_panicking_on_the_variables_denies_with_a_policy_error(finance, load_profile, monkeypatch):
    load_profile(FINANCE)
    panic = engine_panic()

    def panicking_context(variables):
        raise panic

    monkeypatch.setattr(cel, "Context", panicking_context)

    assert_denied_by_a_policy_error(check(finance), "large-invoice")
