"""A profile whose YAML names a key twice is refused, by load_profiles and by the admin: YAML's
usual loaders keep the last value silently, so a second `rules:` block appended to a profile would
drop every rule of the first without a word."""

import re

import pytest
import yaml
from django.core.management import CommandError, call_command

from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE

# A finance profile up to its rules, for the tests that write the rules out as YAML.
FINANCE_HEAD = """
role: finance
description: Pays invoices.
may_route_to: [{role: manager, types: ["*"]}]
tools: [pay_invoice]
rules:
"""

# FINANCE with a second rules block after the first: only the second would count.
TWO_RULES_BLOCKS = yaml.safe_dump(FINANCE, sort_keys=False) + yaml.safe_dump(
    {"rules": [{"id": "harmless", "when": "false", "effect": "deny"}]}, sort_keys=False
)


def test_load_profiles_refuses_a_second_rules_block_and_loads_nothing(db, tmp_path):
    path = tmp_path / "finance.yaml"
    path.write_text(TWO_RULES_BLOCKS)

    with pytest.raises(CommandError, match="the key 'rules' appears twice"):
        call_command("load_profiles", str(path))
    assert not ProfileVersion.objects.exists()


def test_a_key_repeated_inside_a_rule_is_refused_too(db):
    text = yaml.safe_dump(FINANCE, sort_keys=False).replace(
        "  effect: require_approval\n", "  effect: require_approval\n  effect: allow\n", 1
    )

    with pytest.raises(services.ProfileRefused, match="the key 'effect' appears twice"):
        services.parse_profile_yaml(text, source="test")


def test_the_admin_refuses_it_as_a_form_error(admin_client):
    response = admin_client.post("/admin/policy/profileversion/add/", {"profile_yaml": TWO_RULES_BLOCKS})

    assert response.status_code == 200
    assert "the key &#x27;rules&#x27; appears twice" in response.content.decode()
    assert not ProfileVersion.objects.exists()


def test_the_same_profile_written_once_still_loads(db, tmp_path):
    path = tmp_path / "finance.yaml"
    path.write_text(yaml.safe_dump(FINANCE, sort_keys=False))

    call_command("load_profiles", str(path))

    assert ProfileVersion.objects.get(role="finance").document["rules"] == FINANCE["rules"]


def test_a_list_used_as_a_key_is_still_refused_as_invalid_yaml(db):
    with pytest.raises(services.ProfileRefused, match="Not valid YAML"):
        services.parse_profile_yaml("? [a, b]\n: 1\n", source="test")


def test_a_merge_key_still_reads_as_yaml_reads_it(db):
    # The second rule takes the first's fields and overrides two: YAML's rule, not a repeated key.
    text = (
        FINANCE_HEAD
        + """\
  - &large {id: large-invoice, when: 'action.arguments.amount > 1000', effect: require_approval, approver_role: manager}
  - <<: *large
    id: huge-invoice
    when: 'action.arguments.amount > 100000'
"""
    )

    document = services.parse_profile_yaml(text, source="test")

    assert document == services.validate_document(yaml.safe_load(text), source="test")
    assert [rule["id"] for rule in document["rules"]] == ["large-invoice", "huge-invoice"]
    assert document["rules"][1]["approver_role"] == "manager"


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("role: finance\n<<: {tools: [a]}\n<<: {tools: [b]}\n", "the merge key '<<' appears twice"),
        ("role: finance\n<<: [{rules: [a]}, {rules: [b]}]\n", "two merged maps name the key 'rules'"),
        ("role: finance\n1: a\n", "the key 1 is not text"),
        ("role: finance\nyes: a\n", "the key True is not text"),
        ("role: finance\nrules: [{id: r1, when: 'true', effect: deny, 1: a}]\n", "the key 1 is not text"),
        ("? [a, b]\n: 1\n", "is not text"),
        # Inside a merged map written in place, or merged from a merge: the same checks.
        ("<<: {1: x}\nrole: finance\n", "the key 1 is not text"),
        ("<<: [{<<: {1: x}}]\nrole: finance\n", "the key 1 is not text"),
        (
            "role: finance\nrules: [{id: r1, when: 'true', <<: {effect: deny, effect: allow}}]\n",
            "'effect' appears twice",
        ),
        ("role: finance\n<<: !!map {tools: [a], tools: [b]}\n", "'tools' appears twice"),
    ],
)
def test_what_yaml_would_read_ambiguously_or_as_no_text_key_is_refused(db, admin_client, text, complaint):
    with pytest.raises(services.ProfileRefused, match=re.escape(complaint)):
        services.parse_profile_yaml(text, source="test")

    response = admin_client.post("/admin/policy/profileversion/add/", {"profile_yaml": text})
    assert response.status_code == 200  # the form again, with the refusal: never a 500
    assert not ProfileVersion.objects.exists()


def test_a_map_that_overrides_what_it_merges_can_itself_be_merged_again(db):
    # Building `derived` flattens its merge in place; merged again below, it must not read as a repeat.
    text = (
        FINANCE_HEAD
        + """\
  - &base {id: base, when: 'action.arguments.amount > 1000', effect: deny}
  - &derived {<<: *base, id: derived, effect: require_approval, approver_role: manager}
  - {<<: *derived, id: third}
"""
    )

    document = services.parse_profile_yaml(text, source="test")

    assert [(rule["id"], rule["effect"]) for rule in document["rules"]] == [
        ("base", "deny"),
        ("derived", "require_approval"),
        ("third", "require_approval"),
    ]


def test_a_mapping_that_merges_itself_is_refused_not_a_crash(db):
    with pytest.raises(services.ProfileRefused, match="Not valid YAML"):
        services.parse_profile_yaml("&a {role: finance, <<: *a}\n", source="test")
