"""Shared fixtures. The suite runs on PostgreSQL and Redis (make test starts both)."""

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from approvals.models import Approval
from orchestrator.http import replay_copies
from orchestrator.identity import access_cache, held_roles
from orchestrator.identity.models import ApiToken
from orchestrator.identity.principal import Principal
from routing import services as routing

# The test database starts without profiles (every role allowed, as before policy); tests/policy
# loads the ones it needs. settings is configured by now, and the test database is made later.
settings.POLICY_DEFAULT_PROFILES_DIR = ""

# Schemathesis fixtures (staff_authorization, keep_the_test_connection) for the fuzz modules.
pytest_plugins = ["tests.fuzzing"]


# Content types and permissions are made from the models and are the same in every test. The flush
# keeps them, so the post_migrate that follows it finds them instead of writing them again (about 60
# ms of every transactional test's teardown).
KEPT_BY_THE_FLUSH = frozenset({"django_content_type", "auth_permission"})


# A table this big after a test had more than a few rows written to it. TRUNCATE gives its file back;
# DELETE keeps it at its size, so once truncated a table is measured small again.
_FEW_PAGES_BYTES = 8 * 8192


def _holds_more_than_a_few_pages(database, tables):
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relname = ANY(%s) AND pg_relation_size(c.oid) > %s)",
            [list(tables), _FEW_PAGES_BYTES],
        )
        return cursor.fetchone()[0]


@pytest.fixture(scope="session", autouse=True)
def _flush_past_the_audit_trigger():
    """Transactional tests end with Django's flush, which empties every table; the audit table's
    append-only trigger refuses that. The flush runs with session_replication_role = replica, where
    ordinary triggers do not fire; only a superuser (the test database user) may set it.

    It empties them with one DELETE per table where Django sends one TRUNCATE of all: on the suite's
    nearly empty tables 6 ms against 40, paid by every transactional test. Under replica no foreign
    key is checked, so the order does not matter, and neither resets a sequence. After a test that
    filled a table (the console's scale tests seed tens of thousands of rows), Django's TRUNCATE
    runs instead: deleting them would be slower, and would leave the next tests scanning the dead
    rows until autovacuum came by. So does a flush asked to reset sequences."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original_sql_flush = DatabaseOperations.sql_flush
    original_execute_sql_flush = DatabaseOperations.execute_sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        emptied = [table for table in tables if table not in KEPT_BY_THE_FLUSH]
        if reset_sequences or _holds_more_than_a_few_pages(self.connection, emptied):
            return original_sql_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        if not emptied:
            return []
        return [
            "".join(
                f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};" for table in emptied
            )
        ]

    def execute_sql_flush(self, sql_list):
        with self.connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
        try:
            original_execute_sql_flush(self, sql_list)
        finally:
            with self.connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = DEFAULT")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        patch.setattr(DatabaseOperations, "execute_sql_flush", execute_sql_flush)
        yield


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """The people the fixtures make get passwords hashed with MD5, as Django's testing guide advises:
    production's PBKDF2 takes about 0.23 s per hash on these machines, paid by every fixture that makes
    a person with a password and every sign-in. Production's hashers stay listed after it, so a
    password hashed by them still verifies. Tests of sign-ins sent together ask for production's own
    (production_password_hashing in tests/auth/conftest.py)."""
    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]
    ):
        yield


@pytest.fixture(autouse=True)
def _fresh_access_caches():
    """No test sees a principal or a pause another test left in this process's access caches."""
    access_cache.clear_all()
    yield
    access_cache.clear_all()


@pytest.fixture(autouse=True)
def _no_held_roles_of_other_tests():
    """The roles an OIDC account was seen to hold are recorded once per process; a test's rows are gone
    after it, so the next test records them again."""
    held_roles.clear()
    yield


@pytest.fixture(autouse=True)
def _no_replay_copies_of_other_tests():
    """Transactional tests commit, and the answers their retries replay are copied (orchestrator.http.
    replay_copies); the flush at their end empties the records but not the copies or their hints, which
    a later test reusing a credential and a key would be answered from."""
    replay_copies.clear()
    yield


class AgentClient(APIClient):
    """An API client holding one bearer token; `.token` is its ApiToken (`.token.subject` names the caller)."""

    def __init__(self, raw_token, token):
        super().__init__()
        self.token = token
        self.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_token}")


@pytest.fixture
def make_agent(db):
    def make(role="finance", *, staff=False, name=""):
        token, raw = ApiToken.issue(role=role, is_staff=staff, name=name or f"{role}-agent")
        return AgentClient(raw, token)

    return make


@pytest.fixture
def issue_token(db):
    """issue_token(role, staff=False) -> the raw bearer token of a new agent of that role (for HTTP clients
    outside Django's test client: live servers, subprocesses)."""

    def issue(role="finance", *, staff=False):
        _, raw = ApiToken.issue(role=role, is_staff=staff, name=f"{role}-agent")
        return raw

    return issue


@pytest.fixture
def finance(make_agent):
    return make_agent("finance")


@pytest.fixture
def manager(make_agent):
    return make_agent("manager")


@pytest.fixture
def staff(make_agent):
    return make_agent("operations", staff=True)


@pytest.fixture
def engineering(make_agent):
    return make_agent("engineering")


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture
def route(finance):
    """Route a task as finance (or as `agent`) through the API and return the response body."""

    def send(to_role="engineering", *, agent=None, **fields):
        response = (agent or finance).post(
            "/api/v1/tasks/route",
            {"type": "invoice.check", "to_role": to_role, "payload": {"n": 1}, **fields},
            format="json",
        )
        assert response.status_code == 202, response.content
        return response.json()

    return send


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache (Redis in make test), so no test sees another's entries."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def read_only_database(transactional_db):
    """The database as a demoted primary or a hot standby serves it: reads answer, every write is
    refused (SQLSTATE 25006). Session-level, on the connection the in-process requests use."""
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    yield
    connection.close()


@pytest.fixture
def sent(monkeypatch):
    """The query strings psycopg actually sends, one per round trip."""
    import psycopg

    strings = []
    execute = psycopg.Cursor.execute
    connection.ensure_connection()  # a new connection's own set-up is not the test's

    def recording(self, query, params=None, **kwargs):
        strings.append(query if isinstance(query, str) else query.decode())
        return execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    return strings


@pytest.fixture
def make_approval(db):
    """A task routed by a finance agent that waits for a manager's approval; returns the approval."""

    def make(*, type="pay-invoice", trace_id="trace-approval", expires_in=None):
        agent = Principal(subject="test:finance-agent", role="finance")
        routed = routing.route_task(
            principal=agent,
            type=type,
            to_role="finance",
            trace_id=trace_id,
            payload={"amount": 1200},
            requires_approval=True,
            approver_role="manager",
            expires_in=expires_in,
        )
        return Approval.objects.get(pk=routed.approval_id)

    return make


@pytest.fixture
def manager_in_admin(client, db):
    """Django's test client signed in as "maria", a staff person of approver:manager."""
    user = get_user_model().objects.create_user("maria", password="pw-for-tests", is_staff=True)
    # The group migrate created carries the permissions deciding needs.
    user.groups.add(Group.objects.get(name="approver:manager"))
    client.force_login(user)
    return client
