"""The flush at the end of a transactional test (tests/conftest.py) empties every table, the
append-only audit table included, keeps only the content types and permissions made from the models,
and leaves the approver groups post_migrate makes, with their permissions, as migrate left them.
After a test that filled a table it truncates, which gives the table's file back."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

from approvals.services import approver_group_name
from audit import services as audit
from orchestrator.identity.models import ApiToken
from tests.conftest import KEPT_BY_THE_FLUSH

pytestmark = pytest.mark.django_db(transaction=True)


def flush_as_a_transactional_test_ends(*, reset_sequences=False):
    call_command(
        "flush",
        verbosity=0,
        interactive=False,
        database="default",
        reset_sequences=reset_sequences,
        allow_cascade=False,
        inhibit_post_migrate=False,
    )


@pytest.fixture
def small_tables():
    """Every table truncated to no pages (a flush that resets sequences truncates), whatever the tests
    before this one left in the worker's database: the flush after a few rows then deletes them."""
    flush_as_a_transactional_test_ends(reset_sequences=True)


def table_bytes(table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [table])
        return cursor.fetchone()[0]


def tables_with_rows():
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        found = []
        for table in tables:
            cursor.execute(f"SELECT EXISTS (SELECT FROM {connection.ops.quote_name(table)})")
            if cursor.fetchone()[0]:
                found.append(table)
    return found


def test_every_table_but_the_models_own_content_types_and_permissions_is_emptied(small_tables):
    ApiToken.issue(role="finance", is_staff=False, name="finance-agent")
    audit.record(
        event_type="test.event", actor="test", role="", trace_id="", target_type="test", target_id=1, metadata={}
    )
    Group.objects.create(name="a group of the test's own")
    content_types = list(ContentType.objects.order_by("id").values_list("id", flat=True))
    permissions = list(Permission.objects.order_by("id").values_list("id", flat=True))

    flush_as_a_transactional_test_ends()

    groups = set(Group.objects.values_list("name", flat=True))
    approver_groups = {approver_group_name(role) for role in settings.ORCHESTRATOR_ROLES}
    assert set(tables_with_rows()) - KEPT_BY_THE_FLUSH == {"auth_group", "auth_group_permissions"}
    assert groups == approver_groups
    # The same rows, not new ones made again by post_migrate.
    assert list(ContentType.objects.order_by("id").values_list("id", flat=True)) == content_types
    assert list(Permission.objects.order_by("id").values_list("id", flat=True)) == permissions
    assert all(Group.objects.get(name=name).permissions.exists() for name in approver_groups)


def test_after_a_test_that_filled_a_table_the_flush_truncates_and_the_table_is_small_again(small_tables):
    audit.record_many(
        {
            "event_type": "test.event",
            "actor": "test",
            "role": "",
            "trace_id": "",
            "target_type": "test",
            "target_id": number,
            "metadata": {},
        }
        for number in range(2000)
    )
    assert table_bytes("audit_auditevent") > 8 * 8192

    flush_as_a_transactional_test_ends()

    assert set(tables_with_rows()) - KEPT_BY_THE_FLUSH == {"auth_group", "auth_group_permissions"}
    assert table_bytes("audit_auditevent") == 0
