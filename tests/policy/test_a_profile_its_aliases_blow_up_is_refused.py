"""A profile is at most MAX_PROFILE_SIZE: its YAML text, the document its aliases spell out (counted
before it is built) and its canonical JSON, on every path that makes a version (load_profiles, the
admin, the service). Found by an outside review: `tools: [&a <10,000 characters>, *a, *a, ...]`, 30 KB
of YAML, loaded as a 50 MB profile (37 s, 367 MB), which every GET /api/v1/profiles/<role> then sent."""

import time

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE

REVIEWED = (
    "role: finance\ndescription: x\nmay_route_to: []\nrules: []\n"
    f"tools: [&a {'a' * 10_000}, {', '.join(['*a'] * 5000)}]\n"
)


def nested(*, entries, types, length):
    """may_route_to: `entries` copies of one entry whose types are `types` copies of one name `length` long."""
    names = f"[&name {'a' * length}, {', '.join(['*name'] * (types - 1))}]"
    return (
        "role: finance\ndescription: x\ntools: []\nrules: []\n"
        f"may_route_to: [&entry {{role: manager, types: {names}}}, {', '.join(['*entry'] * (entries - 1))}]\n"
    )


def test_the_reviewed_alias_bomb_is_refused_in_a_moment_naming_its_spelled_out_size(db):
    started = time.monotonic()

    with pytest.raises(services.ProfileRefused, match=r"the profile is 50,\d{3},\d{3} characters; at most 262,144"):
        services.parse_profile_yaml(REVIEWED, source="finance.yaml")
    assert time.monotonic() - started < 5


def test_aliases_of_aliases_are_counted_as_the_copies_they_make(db):
    services.parse_profile_yaml(nested(entries=10, types=10, length=1000), source="finance.yaml")

    with pytest.raises(services.ProfileRefused, match=r"the profile is 10,0\d\d,\d{3} characters"):
        services.parse_profile_yaml(nested(entries=100, types=100, length=1000), source="finance.yaml")


def test_load_profiles_names_the_file_and_loads_nothing(db, tmp_path):
    path = tmp_path / "finance.yaml"
    path.write_text(REVIEWED)

    with pytest.raises(CommandError, match=rf"{path}: Spelled out .* at most 262,144"):
        call_command("load_profiles", str(path))
    assert not ProfileVersion.objects.exists()


def test_the_admin_form_refuses_it(client, db):
    client.force_login(get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests"))

    response = client.post("/admin/policy/profileversion/add/", {"profile_yaml": REVIEWED})

    assert response.status_code == 200
    assert "admin: Spelled out (each alias a copy of its anchor)" in response.content.decode()
    assert not ProfileVersion.objects.exists()


def test_a_yaml_text_over_the_bound_is_refused_before_it_is_read(db):
    with pytest.raises(services.ProfileRefused, match="The profile is 262,145 bytes long; at most 262,144"):
        services.parse_profile_yaml(b"#" * (services.MAX_PROFILE_SIZE + 1), source="finance.yaml")


def test_the_service_refuses_a_document_over_the_bound(db):
    document = {**FINANCE, "tools": [f"tool-{n}-{'t' * 100}" for n in range(3000)]}

    with pytest.raises(services.ProfileRefused, match=r"The profile is 3\d\d,\d{3} bytes of JSON; at most 262,144"):
        services.upsert_profile(document=document, actor="test", source="test")
    assert not ProfileVersion.objects.exists()


def test_anchors_and_merges_within_the_bound_still_load(db):
    text = """
role: finance
description: Pays invoices.
may_route_to: [{role: manager, types: ["*"]}]
tools: &tools [fetch_status, pay_invoice]
rules:
  - &gate {id: large-invoice, when: 'action.arguments.amount > 1000', effect: require_approval, approver_role: manager}
  - {<<: *gate, id: large-refund, when: 'action.arguments.refund > 1000'}
"""
    document = services.parse_profile_yaml(text, source="finance.yaml")

    assert [rule["id"] for rule in document["rules"]] == ["large-invoice", "large-refund"]
    assert yaml.safe_load(text)["tools"] == document["tools"]
