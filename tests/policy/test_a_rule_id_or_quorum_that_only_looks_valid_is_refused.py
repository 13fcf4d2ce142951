"""A rule's id is matched whole and its required_approvals must be the integer 1: a profile whose id
ends in a line break, or whose quorum is `true` or `1.0`, is refused at load, naming the rule.

Found by an outside review: the id pattern ended in `$`, which also matches before a final "\\n",
so rules "big" and "big\\n" loaded as two distinct rules; and `required_approvals: true` or `1.0`
passed the `!= 1` check (both equal 1 in Python) and went into the stored document and its digest
as written."""

import pytest

from policy import services

pytestmark = pytest.mark.django_db


def rule(rule_id="big-payments", **fields):
    return {"id": rule_id, "when": "int(task.payload.amount) > 1000", "effect": "deny", **fields}


def profile(*rules):
    return {"role": "finance", "rules": list(rules)}


def test_a_rule_id_ending_in_a_line_break_is_refused_beside_the_same_id_without_it(load_profile):
    with pytest.raises(services.ProfileRefused, match="no line break") as refused:
        load_profile(profile(rule("big"), rule("big\n")))

    assert "rule 'big\\n'" in str(refused.value)


def test_a_yaml_block_scalar_id_which_ends_in_a_line_break_is_refused():
    text = "role: finance\nrules:\n  - id: |\n      big\n    when: int(task.payload.amount) > 1000\n    effect: deny\n"

    with pytest.raises(services.ProfileRefused, match="Each rule needs an id"):
        services.parse_profile_yaml(text, source="finance.yaml")


@pytest.mark.parametrize("required", [True, 1.0, "1"], ids=["true", "one-point-zero", "text"])
def test_required_approvals_that_only_equals_one_is_refused_naming_the_value(load_profile, required):
    with pytest.raises(services.ProfileRefused, match="required_approvals must be a whole number") as refused:
        load_profile(profile(rule(required_approvals=required)))

    assert repr(required) in str(refused.value)
    assert "big-payments" in str(refused.value)


def test_required_approvals_of_the_integer_one_loads_and_is_stored_as_written(load_profile):
    version = load_profile(profile(rule(required_approvals=1)))

    [stored] = version.document["rules"]
    assert type(stored["required_approvals"]) is int and stored["required_approvals"] == 1
