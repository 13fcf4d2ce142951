"""Migrations apply, roll back to zero and re-apply on PostgreSQL."""

import pytest
from django.core.management import call_command
from django.db import connection

# Dependents before what they depend on, so each rollback finds nothing still pointing at its tables.
OUR_APPS = [
    "webhooks",
    "policy",
    "approvals",
    "notifications",
    "routing",
    "agent_sessions",
    "audit",
    "identity",
    "http",
]
OUR_TABLES = {
    "agent_sessions_session",
    "agent_sessions_sessionmessage",
    "routing_task",
    "routing_notification",
    "approvals_approval",
    "approvals_approvalvote",
    "approvals_approvalemail",
    "approvals_approvalmailcursor",
    "webhooks_webhooksubscription",
    "webhooks_deliveryattempt",
    "policy_profileversion",
    "policy_rolepause",
    "audit_auditevent",
    "audit_auditcheckpoint",
    "audit_auditwitnesscursor",
    "orchestrator_apitoken",
    "orchestrator_idempotencyrecord",
}


def existing_tables():
    return set(connection.introspection.table_names())


@pytest.fixture
def whole_schema_afterwards():
    """Whatever a migration test does, the tests after it find every table, and content types
    with the ids the database now holds (rolling back to zero and re-applying recreates them)."""
    from django.contrib.contenttypes.models import ContentType

    yield
    call_command("migrate", verbosity=0)
    ContentType.objects.clear_cache()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("whole_schema_afterwards")
def test_every_migration_rolls_back_to_zero_and_applies_again():
    assert connection.vendor == "postgresql"
    assert OUR_TABLES <= existing_tables()

    for app in OUR_APPS:
        call_command("migrate", app, "zero", verbosity=0)
    assert not (OUR_TABLES & existing_tables())

    call_command("migrate", verbosity=0)
    assert OUR_TABLES <= existing_tables()


def test_the_models_and_the_migrations_agree(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("whole_schema_afterwards")
def test_notifications_keep_their_rows_across_the_move_out_of_routing_both_ways():
    """routing 0004 / notifications 0001 move the model between apps without touching the table."""
    insert = (
        "INSERT INTO routing_notification (id, to_role, from_role, message, trace_id, created_by, created_at, acked_by)"
        " VALUES ('00000000-0000-0000-0000-0000000000aa', 'finance', 'manager', 'kept', 't', 'test', now(), '')"
    )
    call_command("migrate", "notifications", "zero", verbosity=0)
    call_command("migrate", "routing", "0003", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(insert)
    call_command("migrate", verbosity=0)

    from notifications.models import Notification

    assert Notification.objects.get().message == "kept"
    call_command("migrate", "notifications", "zero", verbosity=0)
    call_command("migrate", "routing", "0003", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT message FROM routing_notification")
        assert cursor.fetchall() == [("kept",)]
    call_command("migrate", verbosity=0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("whole_schema_afterwards")
def test_a_database_made_by_the_former_orchestrator_app_is_taken_over_without_losing_tokens():
    """identity and http adopt the tables the former `orchestrator` app created (ops/table_adoption.py)."""
    from orchestrator.identity.models import ApiToken

    token, _ = ApiToken.issue(role="finance", name="from-before-the-move")
    with connection.cursor() as cursor:
        # The state a database upgraded from the old layout is in: tables there, new apps unrecorded,
        # and none of the tables the new apps added since.
        cursor.execute("DROP TABLE identity_heldrole")
        cursor.execute("DELETE FROM django_migrations WHERE app IN ('identity', 'http')")
    call_command("migrate", verbosity=0)
    assert ApiToken.objects.get(pk=token.pk).name == "from-before-the-move"
