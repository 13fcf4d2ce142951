"""Migrations apply, roll back to zero and re-apply on PostgreSQL."""

import pytest
from django.core.management import call_command
from django.db import connection

OUR_APPS = ["approvals", "routing", "agent_sessions", "audit", "orchestrator"]
OUR_TABLES = {
    "agent_sessions_session",
    "agent_sessions_sessionmessage",
    "routing_task",
    "routing_notification",
    "approvals_approval",
    "audit_auditevent",
    "orchestrator_apitoken",
}


def existing_tables():
    return set(connection.introspection.table_names())


@pytest.mark.django_db(transaction=True)
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
