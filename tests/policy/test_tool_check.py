"""POST /policy/check: approvals bound to the exact action, granted once."""

import threading

import pytest
from django.db import connection

from approvals.models import Approval, ApprovalStatus
from audit.models import AuditEvent
from policy import services
from tests.policy.conftest import FINANCE


def check(agent, tool="pay_invoice", **arguments):
    response = agent.post("/api/v1/policy/check", {"tool": tool, "arguments": arguments}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def approve(manager, approval_id):
    response = manager.post(f"/api/v1/approvals/{approval_id}/decision", {"decision": "approve"}, format="json")
    assert response.status_code == 200, response.content


def test_an_allowed_tool_is_allowed_and_an_unlisted_one_denied(finance, finance_profile):
    assert check(finance, amount=10)["decision"] == "allow"
    denied = check(finance, tool="delete_ledger")
    assert (denied["decision"], denied["rule"]) == ("deny", "tools")


def test_approve_once_allows_once_and_the_second_use_needs_a_new_approval(finance, manager, finance_profile):
    first = check(finance, invoice="INV-1", amount=5000)
    assert first["decision"] == "require_approval"
    assert check(finance, invoice="INV-1", amount=5000)["approval_id"] == first["approval_id"]  # still the same one
    approve(manager, first["approval_id"])

    granted = check(finance, invoice="INV-1", amount=5000)
    assert (granted["decision"], granted["approval_id"]) == ("allow", first["approval_id"])
    used = AuditEvent.objects.get(event_type="policy.grant_used")
    assert used.metadata["action_digest"] == first["action_digest"]

    again = check(finance, invoice="INV-1", amount=5000)
    assert again["decision"] == "require_approval"
    assert again["approval_id"] != first["approval_id"]


def test_changed_arguments_need_their_own_approval(finance, manager, finance_profile):
    first = check(finance, invoice="INV-1", amount=5000)
    approve(manager, first["approval_id"])
    other = check(finance, invoice="INV-1", amount=5001)
    assert other["decision"] == "require_approval"
    assert other["approval_id"] != first["approval_id"]
    assert other["action_digest"] != first["action_digest"]


def test_the_requester_cannot_approve_its_own_action(make_agent, finance_profile, load_profile):
    finance = make_agent("finance")
    first = check(finance, amount=5000)
    response = finance.post(
        f"/api/v1/approvals/{first['approval_id']}/decision", {"decision": "approve"}, format="json"
    )
    assert response.status_code in (403, 404)


def test_a_new_profile_version_expires_the_pending_approvals_of_the_old_one(finance, load_profile, finance_profile):
    first = check(finance, amount=5000)
    changed = {**FINANCE, "description": "Pays invoices, carefully."}
    load_profile(changed)
    assert Approval.objects.get(pk=first["approval_id"]).status == ApprovalStatus.EXPIRED
    second = check(finance, amount=5000)
    assert second["approval_id"] != first["approval_id"]
    assert second["version"] == 2


def test_every_decision_is_audited_with_its_digests(finance, finance_profile):
    result = check(finance, amount=5000)
    event = AuditEvent.objects.filter(event_type="policy.decided").latest("id")
    assert event.metadata["decision"] == "require_approval"
    assert event.metadata["action_digest"] == result["action_digest"]
    assert event.metadata["profile_digest"] == finance_profile.digest
    assert event.metadata["profile_version"] == 1


def test_eight_concurrent_checks_consume_the_grant_once(transactional_db, make_agent, finance_profile):
    finance, manager = make_agent("finance"), make_agent("manager")
    first = check(finance, invoice="INV-9", amount=9000)
    approve(manager, first["approval_id"])

    barrier = threading.Barrier(8)
    answers = []

    def one_check():
        try:
            barrier.wait()
            answers.append(check(finance, invoice="INV-9", amount=9000))
        finally:
            connection.close()

    threads = [threading.Thread(target=one_check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8
    assert [a["decision"] for a in answers].count("allow") == 1
    # The seven others share one new approval, not seven.
    assert len({a["approval_id"] for a in answers if a["decision"] == "require_approval"}) == 1
    assert AuditEvent.objects.filter(event_type="policy.grant_used").count() == 1


def test_a_runtime_error_in_a_tool_rule_denies_with_403_naming_the_rule_and_is_recorded(finance, load_profile):
    load_profile(FINANCE)
    response = finance.post(
        "/api/v1/policy/check", {"tool": "pay_invoice", "arguments": {"invoice": "INV-1"}}, format="json"
    )
    assert response.status_code == 403  # no amount: the rule cannot be evaluated
    problem = response.json()
    assert (problem["rule"], problem["decision"]) == ("large-invoice", "deny")
    assert problem["type"].endswith("/policy_error")
    assert AuditEvent.objects.get(event_type="policy.error").metadata["rule"] == "large-invoice"
    assert AuditEvent.objects.get(event_type="policy.decided").metadata["decision"] == "deny"


def test_a_failed_rule_stays_on_record_when_the_check_is_sent_with_an_idempotency_key(finance, load_profile):
    load_profile(FINANCE)
    response = finance.post(
        "/api/v1/policy/check",
        {"tool": "pay_invoice", "arguments": {"invoice": "INV-1"}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="check-1",
    )
    assert response.status_code == 403
    assert AuditEvent.objects.get(event_type="policy.error").metadata["rule"] == "large-invoice"
    assert AuditEvent.objects.get(event_type="policy.decided").metadata["decision"] == "deny"


def test_bad_input_is_a_400(finance, finance_profile):
    response = finance.post("/api/v1/policy/check", {"tool": "x", "arguments": [1]}, format="json")
    assert response.status_code == 400
    response = finance.post("/api/v1/policy/check", {"arguments": {}}, format="json")
    assert response.status_code == 400


def test_a_rule_negating_an_expression_is_refused_at_load_and_its_subtraction_fails_closed(finance, load_profile):
    # Found by two outside reviews: the CEL engine negates -2**63 to -2**63 instead of failing, so
    # `-int(x) > 1000` allowed the largest credit of all (x sent as an integer, refused since by the
    # JSON limits, or as the string "-9223372036854775808"). `0 - x` raises the overflow: a deny.
    def profile(when):
        rule = {"id": "large-credit", "when": when, "effect": "require_approval", "approver_role": "manager"}
        return {**FINANCE, "tools": [*FINANCE["tools"], "credit"], "rules": [rule]}

    with pytest.raises(services.ProfileRefused, match="unary '-'"):
        load_profile(profile('action.tool == "credit" && -int(action.arguments.delta) > 1000'))
    load_profile(profile('action.tool == "credit" && 0 - int(action.arguments.delta) > 1000'))

    assert check(finance, tool="credit", delta=-5000)["decision"] == "require_approval"
    smallest = finance.post(
        "/api/v1/policy/check", {"tool": "credit", "arguments": {"delta": str(-(2**63))}}, format="json"
    )
    assert (smallest.status_code, smallest.json()["decision"]) == (403, "deny")
    refused = finance.post("/api/v1/policy/check", {"tool": "credit", "arguments": {"delta": -(2**63)}}, format="json")
    assert refused.status_code == 400


CREDIT = 'action.tool == "credit" && '


@pytest.mark.parametrize(
    "when",
    [
        CREDIT + "-int(action.arguments.delta) > 1000",
        CREDIT + 'r"\\" != "" && -int(action.arguments.delta) > 1000 && r"\\" != ""',
        CREDIT + "r'\\' != '' && -int(action.arguments.delta) > 1000 && r'\\' != ''",
        CREDIT + '// """\n-int(action.arguments.delta) > 1000 // """',
        CREDIT + '"""\\"""" != "" && -int(action.arguments.delta) > 1000 && "" != """\\""""',
        CREDIT + "action.arguments.deltas.exists(d, -d > 1000)",
    ],
    ids=["plain", "raw-string-ending-in-a-backslash", "raw-single-quoted", "comment", "escaped-triple-quote", "macro"],
)
def test_a_unary_minus_hidden_behind_strings_or_comments_is_still_refused_at_load(load_profile, when):
    # Found by the third outside review: the first reader took r"\" for an open string, and knew
    # neither comments nor escapes inside triple-quoted strings, so each of these loaded and allowed.
    rule = {"id": "large-credit", "when": when, "effect": "require_approval", "approver_role": "manager"}
    with pytest.raises(services.ProfileRefused, match="unary '-'"):
        load_profile({**FINANCE, "tools": [*FINANCE["tools"], "credit"], "rules": [rule]})


@pytest.mark.parametrize(
    "when",
    [
        'action.tool == "credit" && int(action.arguments.delta) > -1000 // a minus in a comment: -x',
        'action.tool == "credit" && action.arguments.note != "-x" && action.arguments.raw != r"a-\\"',
        'action.tool == "credit" && action.arguments.note != """a\\"-b""" && 0 - int(action.arguments.delta) > 1',
    ],
)
def test_minus_signs_in_literals_comments_and_subtractions_are_no_unary_minus(load_profile, when):
    rule = {"id": "credit", "when": when, "effect": "require_approval", "approver_role": "manager"}
    load_profile({**FINANCE, "tools": [*FINANCE["tools"], "credit"], "rules": [rule]})
