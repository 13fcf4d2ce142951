"""A JSON object that names one key twice is refused with a 400 problem, on every endpoint and in
every import. Parsers disagree on which value such a key has (orjson keeps the last, others the
first), so a policy check that read `"amount": 5` must never stand for a call whose tool reads
`"amount": 900000` from the same text."""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from orchestrator.http.json_limits import members_written
from policy import services as policy
from routing.models import Task
from sessions.models import Session
from tests.jobs.import_records import run, session_record, write
from tests.policy.conftest import FINANCE
from transfer import services as transfer

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance_profile(db):
    policy.upsert_profile(document=FINANCE, actor="test", source="test")


def post_raw(client, path, body):
    return client.generic("POST", path, body, content_type="application/json")


def test_a_policy_check_with_an_argument_named_twice_is_refused_and_decides_nothing(finance, finance_profile):
    body = '{"tool": "pay_invoice", "arguments": {"amount": 5, "amount": 900000}}'

    response = post_raw(finance, "/api/v1/policy/check", body)

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"] == {"arguments": ["An object names the key 'amount' more than once."]}
    assert not AuditEvent.objects.filter(event_type="policy.decided").exists()


def test_the_same_check_written_once_is_answered(finance, finance_profile):
    response = post_raw(finance, "/api/v1/policy/check", '{"tool": "pay_invoice", "arguments": {"amount": 5}}')

    assert (response.status_code, response.json()["decision"]) == (200, "allow")


def test_a_route_whose_payload_names_a_key_twice_is_refused_and_nothing_is_routed(finance, finance_profile):
    body = '{"type": "payment", "to_role": "engineering", "payload": {"amount": 5, "amount": 5000}}'

    response = post_raw(finance, "/api/v1/tasks/route", body)

    assert response.status_code == 400, response.content
    assert "'amount'" in response.json()["errors"]["payload"][0]
    assert not Task.objects.exists()


def test_a_top_level_field_named_twice_is_refused(finance):
    response = post_raw(finance, "/api/v1/sessions", '{"role": "finance", "role": "engineering"}')

    assert response.status_code == 400, response.content
    assert "'role'" in response.json()["detail"]
    assert not Session.objects.exists()


@pytest.mark.parametrize(
    "metadata",
    [
        # The same key spelled with an escape is the same key.
        '{"a": 1, "\\u0061": 2}',
        '{"deep": [{"x": {"k": 1, "k": 1}}]}',
        '{"k": {}, "k": {}}',
    ],
)
def test_a_repeated_key_anywhere_in_the_document_is_refused(finance, metadata):
    response = post_raw(finance, "/api/v1/sessions", f'{{"role": "finance", "metadata": {metadata}}}')

    assert response.status_code == 400, response.content
    assert not Session.objects.exists()


def test_colons_and_quotes_inside_strings_are_not_taken_for_members(finance):
    metadata = {'a":"b': "x:y", "q": 'say \\"k\\": 1', "": ":", "k": ["::", {"z": '"'}]}

    response = finance.post("/api/v1/sessions", {"role": "finance", "metadata": metadata}, format="json")

    assert response.status_code == 201, response.content
    assert Session.objects.get().metadata == metadata


def members_of(value):
    if isinstance(value, dict):
        return len(value) + sum(map(members_of, value.values()))
    if isinstance(value, list):
        return sum(map(members_of, value))
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_member_count_of_any_document_without_repeats_matches_what_is_written(value):
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False), json.dumps(value, indent=1)):
        body = text.encode()
        assert members_written(body) == members_of(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=4), st.randoms())
def test_any_document_with_a_key_written_twice_counts_more_members_than_it_holds(value, rng: random.Random):
    key = rng.choice(sorted(value))
    text = json.dumps(value)
    # The same object again with its first key repeated at the end.
    doubled = text[:-1] + ", " + json.dumps(key) + ": " + json.dumps(value[key]) + "}"

    assert members_written(doubled.encode()) == members_of(value) + 1 + members_of(value[key])
    assert members_written(doubled.encode()) > members_of(json.loads(doubled))


def test_an_imported_record_naming_a_key_twice_is_skipped_and_the_others_land(tmp_path):
    good, bad = session_record(), session_record()
    bad_text = json.dumps(bad)[:-1] + ', "role": "engineering"}'

    out, err = run(write(tmp_path, f'{{"sessions": [{json.dumps(good)}, {bad_text}]}}'))

    assert [str(pk) for pk in Session.objects.values_list("id", flat=True)] == [good["id"]]
    assert f"Skipped sessions[1] (id {bad['id']!r}): An object names the key 'role' more than once." in err, err


def test_an_import_file_naming_a_top_level_key_twice_is_refused_whole(tmp_path):
    text = json.dumps({"sessions": [session_record()]})[:-1] + ', "sessions": []}'

    with pytest.raises(transfer.BadRecord, match="'sessions' more than once"):
        transfer.load(str(write(tmp_path, text)))
    assert not Session.objects.exists()
