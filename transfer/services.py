"""Moving sessions (with transcripts), tasks, approvals and notifications between instances.

The file format is documented in docs/operations.md. Import upserts by id, so running it twice
changes nothing; each record is validated as a whole, field by field as the API validates it
(roles, trace ids, the JSON limits, the API's bounds on texts and on the times the jobs measure
from), and written in its own transaction with its audit event, so a bad record is reported (with
its position) and skipped, never half-written. A record that already exists with a different
state is reported and skipped too, unless overwrite is asked for; then its audit event carries the
before and after values (each only to the roles that read it then, when the record moves to other
roles). Records are copied as data, states included: an import restores what another instance
recorded, it does not replay transitions, and it refuses a record that would leave the data
inconsistent: a task waiting in awaiting_approval with no pending approval, whichever of the two
records would cause it.

A claim is the one exception to copying as data. Principal subjects are local to an instance:
`token:5` there is another agent than `token:5` here, and the API shows a claimed task's lease token
to the principal named in `claimed_by`. So an imported claim is nobody's here: its claimer is kept on
record behind IMPORTED_CLAIMER, a prefix no principal's subject has, and its lease token is never the
file's. The token an agent holds on another instance (or that anyone reads in the file) is not
honoured here; the task gets a token derived from its claim and this instance's SECRET_KEY, shown to
no one, so only a fresh claim here finishes it: claim-next or reclaim_tasks once its lease passes, as
any passed lease, or staff. Derived from the claim (not drawn at random), the token is the same on
every import of the same claim (while SECRET_KEY stays), so importing a file twice, or this
instance's re-export of an imported claim, changes nothing. A claim held here that the record leaves
as it is (same claimer, same token) stays its claimer's; but the import cannot tell this instance's
own export from another's, so a claim restored into an emptied database is nobody's too. Found by
an outside review: a local namesake of the exporting instance's claimer was shown the token and
could complete the task.
"""

import base64
import datetime
import functools
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, models, transaction
from django.db.models import Q, Sum
from django.db.models.functions import Length
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError as ApiValidationError

from approvals import services as approvals
from approvals.models import Approval, ApprovalStatus
from audit import services as audit
from notifications.api import NotificationIn
from notifications.models import Notification
from orchestrator.bounded_pages import bounded_page, next_slice
from orchestrator.db import read_only_snapshot
from orchestrator.http.json_limits import JsonLimitError, check_document, parse_exact, repeated_key_of
from orchestrator.http.problems import validation_summary
from orchestrator.http.tracing import is_trace_id
from orchestrator.identity.roles import is_known_role
from policy.services import digest_of
from routing import services as routing
from routing.models import Task, TaskStatus
from sessions.api import MessageIn
from sessions.models import LIVE_SESSION_STATUSES, Session, SessionMessage

FORMAT = "orchestrator-export"
VERSION = 1
ACTOR = "system:import_json"
MESSAGE_FIELDS = ("author_role", "content", "created_at")
# What the export holds of transcripts at once (characters of content): runs of sessions whose
# transcripts fit are read in one query; a longer transcript is read TRANSCRIPT_PAGE messages at a time.
TRANSCRIPT_CHARACTERS_IN_MEMORY = 8_000_000
TRANSCRIPT_PAGE = 200
# Marks the claimer of an imported claim (`imported:token:5`). A principal's subject always starts
# with its scheme (`token:`, `oidc:`, `user:`, `webhook:`; orchestrator/identity), never this one, so
# no principal here is ever taken for the claimer.
IMPORTED_CLAIMER = "imported:"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    key: str
    model: Any  # a model class; Any, since the kinds use each model's own manager
    prefix: str
    target_type: str
    role_field: str
    # Foreign-key attnames -> the kind they point at, for prefix normalisation.
    references: dict = field(default_factory=dict)
    # Fields holding a role name: each must be one of ORCHESTRATOR_ROLES, as the API demands.
    role_fields: tuple = ()
    # JSON fields the API accepts only as objects.
    object_fields: tuple = ()

    @property
    def fields(self) -> dict[str, models.Field]:
        return {f.attname: f for f in self.model._meta.concrete_fields}

    @property
    def stamped_fields(self) -> list[str]:
        """The auto_now(_add) times, which save() overwrites and an import restores."""
        return [
            name
            for name, f in self.fields.items()
            if isinstance(f, models.DateTimeField) and (f.auto_now or f.auto_now_add)
        ]


TASKS = Kind(
    "tasks", Task, "task_", "task", "from_role", role_fields=("from_role", "to_role"), object_fields=("payload",)
)
SESSIONS = Kind(
    "sessions",
    Session,
    "sess_",
    "session",
    "role",
    {"task_id": TASKS},
    role_fields=("role",),
    object_fields=("metadata",),
)
APPROVALS = Kind(
    "approvals",
    Approval,
    "appr_",
    "approval",
    "approver_role",
    {"task_id": TASKS},
    ("approver_role",),
    object_fields=("action",),
)
NOTIFICATIONS = Kind(
    "notifications",
    Notification,
    "notif_",
    "notification",
    "to_role",
    {"session_id": SESSIONS},
    ("to_role", "from_role"),
)
# Import order: a record's references are imported before it.
KINDS = (TASKS, SESSIONS, APPROVALS, NOTIFICATIONS)


class BadRecord(Exception):
    pass


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


class Conflict(BadRecord):
    """The record exists here with a different state; kept as it is unless overwrite is asked for."""


@dataclass
class ImportReport:
    counts: dict = field(default_factory=lambda: {kind.key: Counts() for kind in KINDS})
    # (position such as "sessions[3]", the id as given, the reason)
    errors: list = field(default_factory=list)


def normalise_id(value: object, prefix: str) -> uuid.UUID:
    """`sess_<uuid>`, a bare UUID, with or without dashes -> UUID; anything else is refused."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise BadRecord(f"id {value!r} is not a string")
    raw = value[len(prefix) :] if value.startswith(prefix) else value
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRecord(f"id {value!r} is not a UUID (optionally prefixed {prefix!r})") from None


def _parse_datetime(value: object, name: str) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        parsed: datetime.datetime | None = value
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
    else:
        parsed = None
    if parsed is None:
        raise BadRecord(f"{name}: {value!r} is not an ISO 8601 date-time")
    # Naive times are read as UTC, the time zone every export is written in.
    if timezone.is_naive(parsed):
        return parsed.replace(tzinfo=datetime.UTC)
    try:
        # Stored, it is read back in UTC: a time whose UTC form leaves years 1..9999 could be written
        # but never read again (export, the session list and --overwrite would all fail on it).
        return parsed.astimezone(datetime.UTC)
    except OverflowError:
        raise BadRecord(f"{name}: {value!r} is outside years 1..9999 in UTC") from None


def _to_python(kind: Kind, name: str, value: Any) -> Any:
    model_field = kind.fields[name]
    if value is None:
        return None
    if name in kind.references:
        return normalise_id(value, kind.references[name].prefix)
    if isinstance(model_field, models.DateTimeField):
        return _parse_datetime(value, name)
    if isinstance(model_field, models.JSONField):
        if name in kind.object_fields and not isinstance(value, dict):
            raise BadRecord(f"{name}: expected an object, got {type(value).__name__}")
        return value
    if isinstance(model_field, (models.CharField, models.TextField)) and not isinstance(value, str):
        raise BadRecord(f"{name}: expected a string, got {type(value).__name__}")
    if isinstance(model_field, models.BooleanField) and not isinstance(value, bool):
        raise BadRecord(f"{name}: expected true or false, got {type(value).__name__}")
    if isinstance(model_field, models.IntegerField):
        # The JSON integers only, as the API takes them: to_python would make "50" 50, true 1 and 0.9 0.
        # 5.0 is one too (JSON Schema counts a number with no fraction as an integer).
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRecord(f"{name}: expected an integer, got {type(value).__name__}")
    if name in kind.role_fields and not is_known_role(value):
        raise BadRecord(f"{name}: unknown role {value!r} (ORCHESTRATOR_ROLES)")
    if name == "trace_id" and not is_trace_id(value):
        raise BadRecord(
            f"trace_id: {value!r} is not a trace id (1-128 characters of A-Z a-z 0-9 . _ : -, not dots alone)"
        )
    try:
        return model_field.to_python(value)
    except ValidationError as exc:
        raise BadRecord(f"{name}: {' '.join(exc.messages)}") from None


@functools.cache
def _longest_text(serializer: Any, name: str) -> int:
    """The most characters the API's own input serializer takes for a text field: the same limit,
    never a copy of it that could drift."""
    return int(serializer().fields[name].max_length)


def _messages(raw: object) -> list[tuple[str, str, datetime.datetime]]:
    if not isinstance(raw, list):
        raise BadRecord("messages: expected a list")
    messages = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or set(message) != set(MESSAGE_FIELDS):
            raise BadRecord(f"messages[{index}]: expected exactly {', '.join(MESSAGE_FIELDS)}")
        if not is_known_role(message["author_role"]):
            raise BadRecord(f"messages[{index}].author_role: unknown role {message['author_role']!r}")
        if not isinstance(message["content"], str):
            raise BadRecord(f"messages[{index}].content: expected a string")
        if len(message["content"]) > (longest := _longest_text(MessageIn, "content")):
            raise BadRecord(f"messages[{index}].content: longer than {longest} characters, the most the API takes")
        created_at = _parse_datetime(message["created_at"], f"messages[{index}].created_at")
        messages.append((message["author_role"], message["content"], created_at))
    return messages


def _clean(instance: models.Model) -> None:
    try:
        instance.full_clean(validate_unique=False)
    except ValidationError as exc:
        details = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items())
        raise BadRecord(details) from None


def _values(instance: models.Model, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in names}


def _waits_for_nothing(task_id: Any, *, besides: Any = None) -> bool:
    """Whether the task is in awaiting_approval with no pending approval (`besides` not counted)."""
    task_status = Task.objects.filter(pk=task_id).values_list("status", flat=True).first()
    pending = Approval.objects.filter(task_id=task_id, status=ApprovalStatus.PENDING).exclude(pk=besides)
    return task_status == TaskStatus.AWAITING_APPROVAL and not pending.exists()


def _gate_left_behind(task_id: Any) -> bool:
    """Whether a pending approval here still gates the task, which is no longer in awaiting_approval:
    the task would run ungated, and the approval would wait for a decision no one could make (every
    one answers 409) while the task's sender could not ask for another."""
    task_status = Task.objects.filter(pk=task_id).values_list("status", flat=True).first()
    pending = Approval.objects.filter(task_id=task_id, status=ApprovalStatus.PENDING)
    return task_status is not None and task_status != TaskStatus.AWAITING_APPROVAL and pending.exists()


def _refuse_a_stuck_task(instance: Approval, *, was_pending_for: Any) -> None:
    """An approval that stops being pending for a task that still waits would hold the task in
    awaiting_approval for ever: no decision can come. That is the task it was pending for here
    (an overwrite may decide it or move it to another task) and the task it names now. (Tasks are
    imported first, so each task row already shows the file's own state.)"""
    left = {was_pending_for}
    if instance.status != ApprovalStatus.PENDING:
        left.add(instance.task_id)
    elif instance.task_id is not None:
        left.discard(instance.task_id)
    left.discard(None)
    for task_id in left:
        if _waits_for_nothing(task_id, besides=instance.pk):
            raise BadRecord(
                f"status {instance.status!r} for task {instance.task_id} would leave task {task_id} awaiting "
                "an approval that can never come; import the task's own state with it"
            )


def _refuse_a_gate_on_no_waiting_task(instance: Approval) -> None:
    """The other way round: a pending approval gates a task waiting in awaiting_approval. On a task in
    any other state no decision could act (every one answers 409) until the expiry job expired it;
    the API never leaves one so (a task cannot leave awaiting_approval but through its approval)."""
    if instance.status != ApprovalStatus.PENDING or instance.task_id is None:
        return
    task_status = Task.objects.filter(pk=instance.task_id).values_list("status", flat=True).first()
    if task_status is not None and task_status != TaskStatus.AWAITING_APPROVAL:
        raise BadRecord(
            f"status 'pending' for task {instance.task_id}, which is {task_status!r}, not awaiting_approval: "
            "no decision could act on it; import the task's own state with it"
        )


def _refuse_a_link_its_role_cannot_see(kind: "Kind", instance: Any, *, existing: bool) -> None:
    """A session's task is one its role sends or receives, as the API holds it (sessions.services): the
    task's id would otherwise reach a role that cannot read the task. Checked both ways: a session
    linking a task, and a task whose roles an overwrite moves away from a session that links it (found
    by an outside review: the import let both through). A notification's session is its sender's or
    its recipient's (a later review)."""
    if kind is SESSIONS and instance.task_id is not None:
        roles = Task.objects.filter(pk=instance.task_id).values_list("from_role", "to_role").first()
        if roles is not None and instance.role not in roles:
            raise BadRecord(
                f"task_id {instance.task_id} is a task of {roles[0]!r} to {roles[1]!r}, which role "
                f"{instance.role!r} cannot see"
            )
    if kind is SESSIONS and existing:
        # An overwrite moving a session to another role strands the notifications that link it.
        stranded_notification = (
            Notification.objects.filter(session_id=instance.pk)
            .exclude(from_role=instance.role)
            .exclude(to_role=instance.role)
            .values_list("pk", flat=True)
            .first()
        )
        if stranded_notification is not None:
            raise BadRecord(
                f"role {instance.role!r} would leave notification {stranded_notification}, which links this "
                "session, naming a session of a role that is neither its sender nor its recipient"
            )
    if kind is NOTIFICATIONS and instance.session_id is not None:
        # As the API holds it (notifications.services): the session's id reaches the recipient.
        session_role = Session.objects.filter(pk=instance.session_id).values_list("role", flat=True).first()
        if session_role is not None and session_role not in (instance.from_role, instance.to_role):
            raise BadRecord(
                f"session_id {instance.session_id} is a session of {session_role!r}, neither the notification's "
                f"sender {instance.from_role!r} nor its recipient {instance.to_role!r}: its id would reach a role "
                "that cannot see it"
            )
    if kind is TASKS and existing:
        # A new task has no session linking it yet (the link is a foreign key).
        stranded = (
            Session.objects.filter(task_id=instance.pk)
            .exclude(role__in=[instance.from_role, instance.to_role])
            .values_list("pk", flat=True)
            .first()
        )
        if stranded is not None:
            raise BadRecord(
                f"from_role and to_role would leave session {stranded}, which links this task, with a task "
                "its role cannot see"
            )


def _check_escalation(instance: Approval) -> None:
    """The quorum and escalation chain as the API takes them (the approvals app's own rule): the
    expiry job hands an approval on by this chain, and a malformed one would stop it."""
    try:
        approvals.check_escalation(instance)
    except ApiValidationError as exc:
        raise BadRecord(validation_summary(exc.detail)) from None


# How far ahead of this instance's clock a decision's time may be (another instance's clock drift).
_CLOCK_SKEW = datetime.timedelta(minutes=1)


def _longest_approval_wait() -> datetime.timedelta:
    """How far ahead of its start the API sets a pending approval's expires_at: an expires_in of at
    most MAX_EXPIRES_IN_SECONDS (a route's, a request's, a policy rule's), or APPROVAL_TIMEOUT_SECONDS,
    the default, which that bound does not cap; each escalation level gets as long as the first."""
    return datetime.timedelta(seconds=max(approvals.MAX_EXPIRES_IN_SECONDS, settings.APPROVAL_TIMEOUT_SECONDS))


def _refuse_what_the_api_never_writes(kind: Kind, instance: Any, *, now: datetime.datetime) -> None:
    """The API's bounds on what it writes, which the jobs count on. Expiry, reclaim and retention
    measure from these times: one further ahead than the API could have set it would keep a record
    out of their reach (a pending approval never denied by default, a lease never reclaimed, a live
    session never expired). The texts are held to the API's lengths. A historic time (a decision, a finished task) needs no
    bound: no job waits for it. Found by an outside review."""
    problems = []

    def ahead(name: str, value: datetime.datetime | None, latest: datetime.datetime, what: str) -> None:
        # _CLOCK_SKEW: the exporting instance's clock may run a little ahead of this one's.
        if value is not None and value > latest + _CLOCK_SKEW:
            problems.append(f"{name}: {value.isoformat()} is further ahead than {what}")

    def later(moment: datetime.datetime, by: datetime.timedelta) -> datetime.datetime:
        # Past year 9999 stands for "never": no bound there (history times are not bounded).
        try:
            return moment + by
        except OverflowError:
            return datetime.datetime.max.replace(tzinfo=datetime.UTC) - _CLOCK_SKEW

    if kind is NOTIFICATIONS and len(instance.message) > (longest := _longest_text(NotificationIn, "message")):
        problems.append(f"message: longer than {longest} characters, the most the API takes")
    if kind is TASKS:
        # Not deadline after not_before: a route asks that, but a retry's backoff may move not_before
        # past the deadline (reclaim then cancels the task at its deadline), so an export holds such
        # tasks and must come back whole.
        # A route stamps created_at with its time, and claim-next counts a task due from it (at most
        # routing.services.ROUTED_AHEAD early): one further ahead would wait for that time. Whatever
        # the status: staff may requeue a failed task, which keeps its created_at (an outside review).
        ahead("created_at", instance.created_at, now, "now")
        lease = datetime.timedelta(seconds=settings.TASK_MAX_LEASE_SECONDS)
        ahead(
            "lease_expires_at",
            instance.lease_expires_at,
            now + lease,
            "a claim or heartbeat leases (TASK_MAX_LEASE_SECONDS)",
        )
    if kind is SESSIONS and instance.status in LIVE_SESSION_STATUSES:
        # The API stamps both with the time of the change: neither is ever ahead of the clock.
        for name in ("created_at", "updated_at"):
            ahead(name, getattr(instance, name), now, "now")
    if kind is APPROVALS and instance.status == ApprovalStatus.PENDING:
        wait = _longest_approval_wait()
        what = f"an approval waits ({int(wait.total_seconds())} seconds)"
        ahead("expires_at", instance.expires_at, now + wait, what)
        # The expiry job gives the next escalation level as long as this one: a level started long
        # before its expires_at would come back with a deadline as far ahead.
        started = instance.level_started_at or instance.created_at
        ahead(
            "expires_at",
            instance.expires_at,
            later(started, wait),
            f"its level's start ({started.isoformat()}) plus what {what}",
        )
    if problems:
        raise BadRecord("; ".join(problems))


def _refuse_a_grant_that_could_still_grant(instance: Approval, *, now: datetime.datetime) -> None:
    """An approval a policy check opened (`action_digest`) grants its action once, to the credential
    named in the action. Credentials are this instance's own (`token:7` is another agent elsewhere),
    so one that can still grant (pending, or approved and unspent) stays on the instance that opened
    it; restoring an old export must not make a spent grant unspent either, and an approver must be
    shown the action the digest stands for. Decided ones (spent, rejected, expired) are history and
    come in. Found by an outside review: a forged or re-armed grant answered allow."""
    if not instance.action_digest and instance.action is None:
        return
    if not instance.action_digest or digest_of(instance.action) != instance.action_digest:
        raise BadRecord("action_digest is not the digest of action")
    if instance.status == ApprovalStatus.PENDING or (
        instance.status == ApprovalStatus.APPROVED and instance.granted_use_at is None
    ):
        raise BadRecord(
            "a policy check's approval that can still grant its action is not imported "
            "(it names this instance's credentials); the agent asks again here"
        )
    for name in ("decision_at", "granted_use_at"):
        value = getattr(instance, name)
        if value is not None and value > now + _CLOCK_SKEW:
            raise BadRecord(f"{name}: {value.isoformat()} is in the future")


def _filing(kind: Kind, values: dict[str, Any], senders: dict[uuid.UUID, str] | None = None) -> tuple[str, str | None]:
    """The role an object's events are filed under and the one other role that reads them, as the
    API files its own events of the kind: a task's from_role and to_role, an approval's approver_role
    and the role whose task (or action) it holds, a notification's to_role and from_role. `senders`
    gives tasks' from_role as they were before this import moved them (else they are read now)."""
    role = values[kind.role_field]
    if kind is TASKS:
        return role, values["to_role"]
    if kind is NOTIFICATIONS:
        return role, values["from_role"]
    if kind is APPROVALS:
        if values["task_id"] is not None:
            if senders is not None and values["task_id"] in senders:
                return role, senders[values["task_id"]]
            return role, Task.objects.filter(pk=values["task_id"]).values_list("from_role", flat=True).first()
        principal = (values["action"] or {}).get("principal")
        requester = principal.get("role") if isinstance(principal, dict) else None
        return role, requester if isinstance(requester, str) else None
    return role, None


def _readers(filing: tuple[str, str | None]) -> set[str]:
    return {role for role in filing if role}


def _import_record(
    kind: Kind,
    record: object,
    *,
    source: str,
    position: str,
    overwrite: bool,
    senders_before: dict[uuid.UUID, str] | None = None,
) -> str:
    """Validate and upsert one record in its own transaction; return 'created', 'updated' or 'unchanged'.
    `senders_before`: the from_role of each task this import has written, as it was before (filled
    here for tasks, read for approvals: an approval's old values go to the roles that read them then)."""
    if not isinstance(record, dict):
        raise BadRecord("expected an object")
    try:
        # The record stands where an API body would: the same depth, NUL and integer limits.
        check_document(record)
    except JsonLimitError as exc:
        raise BadRecord(f"{exc.field}: {exc}" if exc.field else str(exc)) from None
    allowed = set(kind.fields) | ({"messages"} if kind is SESSIONS else set())
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise BadRecord(f"unknown fields: {', '.join(unknown)}")
    if "id" not in record:
        raise BadRecord("id is required")
    pk = normalise_id(record["id"], kind.prefix)
    values = {name: _to_python(kind, name, value) for name, value in record.items() if name not in ("id", "messages")}
    messages = _messages(record["messages"]) if "messages" in record else []

    with transaction.atomic():
        existing = kind.model.objects.select_for_update().filter(pk=pk).first()
        now = timezone.now()
        instance = existing or kind.model(pk=pk, **dict.fromkeys(kind.stamped_fields, now))
        before = _values(instance, kind.fields) if existing else {}
        for name, value in values.items():
            setattr(instance, name, value)
        if kind is TASKS:
            _make_an_imported_claim_nobodys(instance, before)
        _clean(instance)
        _refuse_what_the_api_never_writes(kind, instance, now=now)
        if kind is TASKS and (problems := routing.queue_state_problems(instance)):
            raise BadRecord("; ".join(problems))
        if kind is APPROVALS:
            _check_escalation(instance)
            _refuse_a_grant_that_could_still_grant(instance, now=now)
        after = _values(instance, kind.fields)
        changed = sorted(name for name in after if before.get(name, object()) != after[name])

        known = set()
        if existing and messages:
            known = set(SessionMessage.objects.filter(session_id=pk).values_list(*MESSAGE_FIELDS))
        new_messages = sorted((m for m in dict.fromkeys(messages) if m not in known), key=lambda m: m[2])
        if existing and not changed and not new_messages:
            return "unchanged"
        if existing and changed and not overwrite:
            raise Conflict(
                f"exists with a different state ({', '.join(changed)}); kept as it is (--overwrite replaces it)"
            )
        _refuse_a_link_its_role_cannot_see(kind, instance, existing=existing is not None)
        if kind is APPROVALS:
            was_pending = existing is not None and before["status"] == ApprovalStatus.PENDING
            _refuse_a_stuck_task(instance, was_pending_for=before["task_id"] if was_pending else None)
            _refuse_a_gate_on_no_waiting_task(instance)

        if kind is TASKS and existing and senders_before is not None:
            # The sender its approvals' old values were shared with, kept before this write moves it.
            senders_before.setdefault(pk, before["from_role"])
        if changed:
            instance.save(force_insert=not existing)
            # save() stamps created_at/updated_at with the current time; the record's own times are restored.
            kind.model.objects.filter(pk=pk).update(**{name: after[name] for name in kind.stamped_fields})
        if new_messages:
            rows = SessionMessage.objects.bulk_create(
                SessionMessage(session_id=pk, author_role=role, content=content) for role, content, _ in new_messages
            )
            for row, (_, _, created_at) in zip(rows, new_messages, strict=True):
                row.created_at = created_at
            SessionMessage.objects.bulk_update(rows, ["created_at"])
        common = {
            "created": existing is None,
            "changed_fields": changed,
            "messages_added": len(new_messages),
            "source": source,
            "position": position,
        }
        filing = _filing(kind, after)
        events: list[tuple[tuple[str, str | None], dict[str, Any]]] = [(filing, common)]
        if existing and changed:
            was_filed = _filing(kind, before, senders_before)
            old_values = {"before": {name: _recorded(name, before[name]) for name in changed}}
            new_values = {"after": {name: _recorded(name, after[name]) for name in changed}}
            if _readers(was_filed) == _readers(filing):
                events = [(filing, {**common, **old_values, **new_values})]
            else:
                # The record moved to other roles (its role, or the role it is shared with): the roles
                # that read it before read its old values, those that read it now its new ones, and
                # neither the other's. An event has one role and one shared role, hence two events.
                events = [(was_filed, {**common, **old_values}), (filing, {**common, **new_values})]
        for (role, shared_with_role), metadata in events:
            audit.record(
                event_type=f"{kind.target_type}.imported",
                actor=ACTOR,
                role=role,
                actor_role="",
                shared_with_role=shared_with_role,
                trace_id="",
                target_type=kind.target_type,
                target_id=pk,
                metadata=metadata,
            )
    return "updated" if existing else "created"


def _make_an_imported_claim_nobodys(task: Task, before: dict[str, Any]) -> None:
    """Mark the claimer of a claim the record brings and give the claim a lease token no one knows
    (see the module docstring). The claim held here, which the record leaves as it is (same claimer,
    same token), stays its claimer's. A claimed task without a token keeps none: it is refused."""
    if task.status != TaskStatus.CLAIMED:
        return
    if before and (task.claimed_by, task.lease_token) == (before["claimed_by"], before["lease_token"]):
        return
    if task.claimed_by and not task.claimed_by.startswith(IMPORTED_CLAIMER):
        task.claimed_by = IMPORTED_CLAIMER + task.claimed_by
    if task.lease_token:
        # A claim is its task, attempt, start and claimer; a heartbeat there changes none of them.
        claim = f"{task.pk}|{task.attempt}|{_plain(task.claimed_at)}|{task.claimed_by}"
        digest = salted_hmac("transfer.imported_lease_token", claim, algorithm="sha256").digest()
        # As long as a lease token the API hands out (secrets.token_urlsafe(24)).
        task.lease_token = base64.urlsafe_b64encode(digest[:24]).decode()


def load(path: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        # Integers kept exact, so one beyond 64 bits is refused with its record, not rounded.
        data = parse_exact(handle.read())
    if not isinstance(data, dict):
        raise BadRecord("the file must hold one JSON object")
    if (repeated := repeated_key_of(data)) is not None:
        # A second list of records under one key would hide the first from the import.
        raise BadRecord(f"the file names the top-level key {repeated!r} more than once")
    unknown = sorted(set(data) - {"format", "version", "exported_at", *(kind.key for kind in KINDS)})
    if unknown:
        raise BadRecord(f"unknown top-level keys: {', '.join(unknown)}")
    if data.get("format", FORMAT) != FORMAT or data.get("version", VERSION) != VERSION:
        raise BadRecord(f"unsupported format {data.get('format')!r} version {data.get('version')!r}")
    for kind in KINDS:
        if not isinstance(data.get(kind.key, []), list):
            raise BadRecord(f"{kind.key} must be a list")
    return data


def count_records(data: dict[str, Any]) -> int:
    return sum(len(data.get(kind.key, [])) for kind in KINDS)


def import_json(
    *,
    data: dict[str, Any],
    source: str = "",
    on_record: Callable[[str, str], object] | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Upsert every record of a loaded export (see load); return an ImportReport. A record that
    exists with a different state is reported and skipped unless `overwrite`."""
    report = ImportReport()
    gates = _approvals_by_task(data)
    # Approvals tried with their task (_import_task): index -> outcome or error, reported in their own turn.
    settled: dict[int, str | Exception] = {}
    # Each task's from_role before this run wrote it: its approvals are imported after it.
    senders_before: dict[uuid.UUID, str] = {}
    for kind in KINDS:
        for index, record in enumerate(data.get(kind.key, [])):
            position = f"{kind.key}[{index}]"
            try:
                if kind is APPROVALS and index in settled:
                    if isinstance(result := settled[index], Exception):
                        raise result
                    outcome = result
                elif kind is TASKS:
                    outcome = _import_task(
                        record,
                        gates,
                        settled,
                        senders_before,
                        source=source,
                        position=position,
                        overwrite=overwrite,
                    )
                else:
                    outcome = _import_record(
                        kind,
                        record,
                        source=source,
                        position=position,
                        overwrite=overwrite,
                        senders_before=senders_before,
                    )
            except (BadRecord, DatabaseError) as exc:
                _skip(report, kind, record, position, str(exc).strip())
            except Exception as exc:
                # A value no check foresaw: still this record's fault, and its transaction has rolled back;
                # the run goes on, and the traceback is kept for whoever adds the missing check.
                logger.exception("import_json: %s could not be imported", position)
                _skip(report, kind, record, position, f"unexpected {type(exc).__name__}: {exc}")
            else:
                counts = report.counts[kind.key]
                setattr(counts, outcome, getattr(counts, outcome) + 1)
            if on_record is not None:
                on_record(kind.key, position)
    return report


def _skip(report: ImportReport, kind: Kind, record: object, position: str, reason: str) -> None:
    given = record.get("id") if isinstance(record, dict) else None
    report.errors.append((position, given, reason))
    report.counts[kind.key].skipped += 1


def _approvals_by_task(data: dict[str, Any]) -> dict[uuid.UUID, list[tuple[int, dict[str, Any]]]]:
    """The file's approvals by the task they name, with their positions."""
    gates: dict[uuid.UUID, list[tuple[int, dict[str, Any]]]] = {}
    for index, record in enumerate(data.get(APPROVALS.key, [])):
        if not isinstance(record, dict):
            continue
        try:
            task_id = normalise_id(record.get("task_id"), TASKS.prefix)
        except BadRecord:
            continue  # reported in the approvals' turn
        gates.setdefault(task_id, []).append((index, record))
    return gates


def _import_task(
    record: object,
    gates: dict[uuid.UUID, list[tuple[int, dict[str, Any]]]],
    settled: dict[int, str | Exception],
    senders_before: dict[uuid.UUID, str],
    *,
    source: str,
    position: str,
    overwrite: bool,
) -> str:
    """Import a task whose approvals here must still agree with it: one that would wait in
    awaiting_approval with no pending approval takes its pending approval from the file in the same
    transaction, and one that would leave awaiting_approval while an approval here is still pending
    takes that approval's decision from the file; otherwise it is refused. (Approvals come after
    tasks, as they reference them; imported alone, such a task would be stuck, or run ungated, if its
    approval were refused.) Each approval tried goes into `settled` with its outcome or its error."""
    with transaction.atomic():
        _lock_approvals_of(record, gates)
        outcome = _import_record(
            TASKS, record, source=source, position=position, overwrite=overwrite, senders_before=senders_before
        )
        task_id = normalise_id(record["id"] if isinstance(record, dict) else None, TASKS.prefix)

        def disagrees() -> bool:
            return _waits_for_nothing(task_id) or _gate_left_behind(task_id)

        if outcome == "unchanged" or not disagrees():
            return outcome
        left_behind = _gate_left_behind(task_id)
        here: dict[int, str | Exception] = {}
        for index, approval in gates.get(task_id, []):
            # A task left waiting takes a pending approval; one that left awaiting_approval, a decision.
            if (approval.get("status", ApprovalStatus.PENDING) == ApprovalStatus.PENDING) == left_behind:
                continue
            try:
                here[index] = _import_record(
                    APPROVALS,
                    approval,
                    source=source,
                    position=f"approvals[{index}]",
                    overwrite=overwrite,
                    senders_before=senders_before,
                )
            except Exception as exc:
                # Its savepoint rolled back; the error is reported in the approval's own turn.
                here[index] = exc
                continue
            if not disagrees():
                _settle(settled, here)
                return outcome
        # What this transaction wrote is undone with the task: said in the approval's own turn, unless
        # an earlier record of the same task committed an outcome for it, which stands.
        rolled_back = BadRecord(f"rolled back with its task, {position}, which was refused")
        written = {index for index, result in here.items() if result in ("created", "updated")}
        _settle(settled, {index: rolled_back if index in written else result for index, result in here.items()})
        refused = [f"approvals[{index}]" for index, result in here.items() if isinstance(result, Exception)]
        refusals = f" (refused: {', '.join(refused)})" if refused else ""
        if left_behind:
            status = Task.objects.filter(pk=task_id).values_list("status", flat=True).first()
            raise BadRecord(
                f"status {status!r} while an approval here still gates the task (pending), and the file does "
                f"not decide it{refusals}: the task would run ungated; import the approval's decision with it"
            )
        raise BadRecord(
            "status 'awaiting_approval' with no pending approval, here or in the file"
            + refusals
            + ", would leave the task waiting for a decision that can never come"
        )


def _lock_approvals_of(record: object, gates: dict[uuid.UUID, list[tuple[int, dict[str, Any]]]]) -> None:
    """Lock the approvals a task record may go on to write (its approvals here, and the file's for it)
    before the task itself: approval first, then task, the order every other writer takes them in
    (approvals.services). Taken the other way, the import held the task and waited for an approval
    the expiry job held while that job waited for the task: a deadlock. Found by an outside review."""
    if not isinstance(record, dict):
        return  # refused by _import_record, which names what is wrong
    try:
        task_id = normalise_id(record.get("id"), TASKS.prefix)
    except BadRecord:
        return
    in_file = []
    for _, approval in gates.get(task_id, []):
        try:
            in_file.append(normalise_id(approval.get("id"), APPROVALS.prefix))
        except BadRecord:
            continue  # refused in its own turn
    # In one order, so two imports of approvals shared between tasks never wait on each other in a ring.
    approvals_here = Approval.objects.select_for_update().filter(Q(task_id=task_id) | Q(pk__in=in_file))
    list(approvals_here.order_by("pk").values_list("pk", flat=True))


def _settle(settled: dict[int, str | Exception], here: dict[int, str | Exception]) -> None:
    """Record the approvals' outcomes of one task record in `settled`, where an earlier record of the
    same task may have committed one already: a write ("created", "updated") is the news; an error or
    "unchanged" only where nothing was committed before."""
    for index, result in here.items():
        before = settled.get(index)
        if before is None or isinstance(before, Exception) or result in ("created", "updated"):
            settled[index] = result


# Values an event must not carry: a lease token is the claimer's alone (the API shows it to no one
# else), and an event is read by both roles of a task, for good (found by an outside review).
_NOT_RECORDED = {"lease_token"}


def _recorded(name: str, value: Any) -> Any:
    """A field's value as an import event records it."""
    if name in _NOT_RECORDED:
        return "(not recorded)" if value else value
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _export_record(kind: Kind, instance: models.Model) -> dict[str, Any]:
    return {name: _plain(getattr(instance, name)) for name in kind.fields}


def _message_record(role: str, content: str, created_at: datetime.datetime) -> bytes:
    return orjson.dumps({"author_role": role, "content": content, "created_at": _plain(created_at)})


def _transcript_groups(sessions: list[Session]) -> Iterable[tuple[list[Session], bool]]:
    """The chunk's sessions in order, in runs whose transcripts together hold at most
    TRANSCRIPT_CHARACTERS_IN_MEMORY characters (read in one query), each paired with False; a session
    whose transcript alone holds more comes alone, paired with True: its messages are read a page at
    a time. A chunk of sessions with transcripts of LLM size would otherwise sit whole in memory."""
    sizes = dict(
        SessionMessage.objects.filter(session_id__in=[session.pk for session in sessions])
        .order_by()
        .values("session_id")
        .annotate(size=Sum(Length("content")))
        .values_list("session_id", "size")
    )
    run: list[Session] = []
    held = 0
    for session in sessions:
        size = sizes.get(session.pk, 0)
        if size > TRANSCRIPT_CHARACTERS_IN_MEMORY:
            if run:
                yield run, False
                run, held = [], 0
            yield [session], True
            continue
        if held + size > TRANSCRIPT_CHARACTERS_IN_MEMORY:
            yield run, False
            run, held = [], 0
        run.append(session)
        held += size
    if run:
        yield run, False


def _messages_of(session: Session) -> Iterable[bytes]:
    """One session's messages in order, read TRANSCRIPT_PAGE at a time (keyset on id)."""
    after = 0
    while True:
        page = list(
            SessionMessage.objects.filter(session=session, id__gt=after)
            .order_by("id")
            .values_list("id", *MESSAGE_FIELDS)[:TRANSCRIPT_PAGE]
        )
        for message_id, *message in page:
            after = message_id
            yield _message_record(*message)
        if len(page) < TRANSCRIPT_PAGE:
            return


def _write_sessions(stream: BinaryIO, sessions: list[Session], *, first: bool, on_record: Any) -> None:
    """Write the sessions with their transcripts, bytes for bytes what orjson writes for the whole
    record, but a message (or a run of small transcripts) at a time."""
    for group, alone in _transcript_groups(sessions):
        held: dict[Any, list[bytes]] = {}
        if not alone:
            rows = SessionMessage.objects.filter(session_id__in=[session.pk for session in group]).order_by("id")
            for session_id, *message in rows.values_list("session_id", *MESSAGE_FIELDS):
                held.setdefault(session_id, []).append(_message_record(*message))
        for session in group:
            head = orjson.dumps(_export_record(SESSIONS, session))[:-1]
            stream.write((b"\n" if first else b",\n") + head + b',"messages":[')
            first = False
            messages = _messages_of(session) if alone else held.pop(session.pk, [])
            for index, message in enumerate(messages):
                stream.write(message if index == 0 else b"," + message)
            stream.write(b"]}")
            if on_record is not None:
                on_record(SESSIONS.key)


def export_json(
    *, stream: BinaryIO, on_record: Callable[[str], None] | None = None, chunk_size: int = 2000
) -> dict[str, int]:
    """Write every record as one JSON document to a binary stream; return the counts per kind.

    Written record by record, and a long transcript message by message, so memory stays flat however
    large the tables and the transcripts are.
    """
    # Every table as of one instant: read table by table, a task and its approval decided between the
    # two reads would land in the file in states no import can take together.
    with read_only_snapshot():
        return _export(stream=stream, on_record=on_record, chunk_size=chunk_size)


def _export(*, stream: BinaryIO, on_record: Callable[[str], None] | None, chunk_size: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    header = {"format": FORMAT, "version": VERSION, "exported_at": _plain(timezone.now())}
    stream.write(orjson.dumps(header)[:-1])
    for kind in KINDS:
        stream.write(b',\n"' + kind.key.encode() + b'": [')
        counts[kind.key] = 0
        queryset = kind.model.objects.order_by("created_at", "pk")
        last, stop = None, chunk_size
        while True:
            # Keyset pages: a row inserted meanwhile cannot shift a page and repeat or drop a record.
            page = (
                queryset
                if last is None
                else queryset.filter(
                    models.Q(created_at__gt=last.created_at) | models.Q(created_at=last.created_at, pk__gt=last.pk)
                )
            )
            # At most chunk_size records, and fewer when their large columns reach the page byte
            # budget: 2,000 sessions of a MiB each were 2 GB in memory at once.
            chunk = list(bounded_page(page, ordering=("created_at", "pk"), stop=stop, sized=kind.model.LARGE_COLUMNS))
            if not chunk:
                break
            stop = next_slice(stop, chunk, most=chunk_size)
            last = chunk[-1]
            if kind is SESSIONS:
                _write_sessions(stream, chunk, first=counts[kind.key] == 0, on_record=on_record)
                counts[kind.key] += len(chunk)
                continue
            for instance in chunk:
                separator = b"\n" if counts[kind.key] == 0 else b",\n"
                stream.write(separator + orjson.dumps(_export_record(kind, instance)))
                counts[kind.key] += 1
                if on_record is not None:
                    on_record(kind.key)
        stream.write(b"]")
    stream.write(b"\n}\n")
    return counts
