"""The orchestrator's MCP server: eight tools, each one or two calls through OrchestratorClient.

Any MCP host starts it over stdio (`python -m agent_tools`) with
ORCHESTRATOR_URL and ORCHESTRATOR_TOKEN in its environment; the token decides which
role the agent acts as. A refused or failed call comes back as a tool error whose text
says what went wrong, so the model can correct itself; it never stops the server.
"""

import collections
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal, cast
from uuid import UUID

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.stdio import stdio_server
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    Icon,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    ToolAnnotations,
    jsonrpc_message_adapter,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_tools.client import (
    TRACE_ID_PATTERN,
    Conflict,
    ControllerError,
    Forbidden,
    LeaseLost,
    NotFound,
    OrchestratorClient,
    OrchestratorError,
    Unauthorized,
)

INSTRUCTIONS = """\
Tools of the Orchestrator, the control plane of an organisation of AI agents. You act in the
role your token was issued for. Route work to another role with send_task, gate a task on a
human decision with request_approval, tell a role something with notify, and follow any
session, task or approval with fetch_status. Pull work addressed to your role with claim_task:
you hold the task under a lease; call heartbeat_task before the lease passes while you work, then
complete_task or fail_task with the lease_token claim_task gave you. If the lease passes, another
agent may take the task over and your token stops working (a conflict: stop working on it). Every
change is recorded in the audit log under its trace id; pass the same trace_id to related calls to
tie them together."""

# The same shape the API accepts (orchestrator.http.tracing); checked here so a bad one is a clear tool error.

Role = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="A role of the organisation, e.g. finance, manager, engineering, marketing, support, operations.",
    ),
]
TraceId = Annotated[
    str | None,
    Field(
        pattern=TRACE_ID_PATTERN,
        max_length=128,
        description="Optional trace id (letters, digits, . _ : -, not dots alone; at most 128) that ties related calls together "
        "in the audit log. One is generated when omitted.",
    ),
]


class TaskRouted(BaseModel):
    task_id: str = Field(description="Id of the task; pass it to fetch_status or request_approval.")
    status: str = Field(description="pending, or awaiting_approval when the task waits for an approval.")
    approval_id: str | None = Field(description="With requires_approval: the approval the task waits for.")
    trace_id: str | None = Field(description="Trace id of the task in the audit log.")


class ApprovalRequested(BaseModel):
    approval_id: str = Field(description="Id of the approval; pass it to fetch_status.")
    status: str = Field(description="pending until a human of the approver role decides (or it expires).")
    task_id: str | None = Field(description="The task the approval gates.")
    expires_at: str | None = Field(description="When a still pending approval expires (and the task is cancelled).")
    trace_id: str | None = Field(description="Trace id of the request in the audit log.")


class TaskClaimed(BaseModel):
    task_id: str | None = Field(description="Id of the claimed task; null when no task was waiting.")
    type: str | None = Field(default=None, description="Kind of work.")
    payload: Any = Field(default=None, description="The work item the sender attached.")
    attempt: int | None = Field(default=None, description="This claim's attempt (1 on the first).")
    max_attempts: int | None = Field(default=None, description="Attempts before the task is dead-lettered.")
    lease_token: str | None = Field(default=None, description="Pass it to heartbeat_task, complete_task and fail_task.")
    lease_expires_at: str | None = Field(
        default=None, description="Call heartbeat_task before this time, or another agent may take the task over."
    )
    trace_id: str | None = Field(default=None, description="Trace id of the task in the audit log.")


class TaskLease(BaseModel):
    task_id: str = Field(description="Id of the task.")
    status: str = Field(description="claimed while you hold it; completed, failed or pending (retry) after.")
    attempt: int | None = Field(description="The attempt of your claim.")
    lease_expires_at: str | None = Field(description="When your lease passes (null once the task left you).")
    not_before: str | None = Field(description="With fail_task retry: when the task is claimable again.")


def _lease(task) -> TaskLease:
    return TaskLease(
        task_id=task.task_id,
        status=task.status,
        attempt=task.attempt,
        lease_expires_at=task.lease_expires_at,
        not_before=task.raw.get("not_before"),
    )


TaskId = Annotated[UUID, Field(description="Id of the task, as returned by claim_task.")]
LeaseToken = Annotated[
    str, Field(min_length=1, max_length=64, description="The lease_token claim_task returned for this task.")
]
LeaseSeconds = Annotated[
    int | None,
    Field(strict=True, ge=1, description="Length of the lease in seconds; the server default (300) if omitted."),
]


class PolicyChecked(BaseModel):
    decision: str = Field(description="allow, deny, or require_approval (then wait for approval_id and check again).")
    rule: str | None = Field(description="The rule that decided, if one did.")
    reason: str | None = Field(description="Why, in the profile's words.")
    version: int | None = Field(description="The profile version that decided.")
    approval_id: str | None = Field(description="With require_approval: the approval bound to this exact call.")


class NotificationSent(BaseModel):
    notification_id: str = Field(description="Id of the notification.")
    to_role: str | None = Field(description="The role it was sent to.")
    trace_id: str | None = Field(description="Trace id of the notification in the audit log.")


def tool_error(exc: OrchestratorError) -> ToolError:
    """A refusal or failure of the API as a tool error the model can act on."""
    if isinstance(exc, Unauthorized):
        return ToolError(
            "unauthorized: the orchestrator rejected the token; ORCHESTRATOR_TOKEN is missing, wrong, expired "
            "or revoked."
        )
    if isinstance(exc, Forbidden):
        return ToolError(f"forbidden: the token's role lacks the rights for this: {exc.detail}")
    if isinstance(exc, ControllerError):
        return ToolError(f"controller error: {exc} (trace id {exc.trace_id}); retrying later may succeed.")
    if isinstance(exc, LeaseLost):
        # The word INSTRUCTIONS and heartbeat_task's description tell the model to stop on; the client's
        # own kind ("lease lost") is for Python callers, who catch the class.
        return ToolError(f"{Conflict.kind}: {exc.detail}")
    return ToolError(f"{exc.kind}: {exc.detail}")


# JSON's whitespace (RFC 8259): a line of nothing else is no message. Python's str.strip() takes
# more (form feeds, no-break spaces), which JSON reads as text that is no JSON.
_JSON_WHITESPACE = " \t\r\n"
# A line no reader takes for a message: what every line the SDK cannot serve is handed on as.
_NO_MESSAGE = '{"jsonrpc": "2.0"}\n'


def _is_usable_id(request_id: object) -> bool:
    # MCP's ids are strings or integers; JSON-RPC's null, booleans, fractions, arrays, objects are not.
    return isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool))


def _invalid_request(request_id: str | int | None = None) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=INVALID_REQUEST, message="Invalid Request"))


def unreadable_line_error(exc: ValidationError, line: str) -> JSONRPCError | None:
    """The JSON-RPC error answering `line`, which the SDK's reader refuses with `exc`, or None for a
    blank line (no message at all). Its id is the line's own when one can be read (JSON-RPC 2.0:
    null only when it cannot): a request malformed in some other part is answered under the id its
    sender waits on."""
    if exc.errors()[0]["type"] == "json_invalid":
        if not line.strip(_JSON_WHITESPACE):
            return None
        return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message="Parse error"))
    return _invalid_request(_readable_id(line))


def _readable_id(line: str) -> str | int | None:
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    request_id = message.get("id") if isinstance(message, dict) else None
    return request_id if _is_usable_id(request_id) else None


def triage(line: str) -> JSONRPCError | None | Literal[True]:
    """True when the SDK can serve `line`; else the answer it gets (None: a blank line, no answer).
    The check is the SDK's reader's own, plus one it lacks: a request whose id MCP cannot use is
    read by the SDK as a notification, its id dropped, and never answered; it is an invalid request."""
    try:
        jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as exc:
        return unreadable_line_error(exc, line)
    except Exception:
        # Whatever else the validator may raise must not end the session that reads stdin.
        return _invalid_request()
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        # What Python's parser cannot read and the SDK's could: served as the SDK read it.
        return True
    if isinstance(message, dict) and "id" in message and not _is_usable_id(message["id"]):
        return _invalid_request()
    return True


class _StdinLines:
    """The process's stdin as the SDK's stdio transport reads it (UTF-8, undecodable bytes
    replaced, universal newlines), each line through triage. A line the SDK cannot serve is handed
    on as _NO_MESSAGE, which its reader turns into an exception, and its answer queued in `answers`:
    both keep the lines' order, so run_stdio_async answers each exception with the next answer. Read
    from a duplicate of fd 0, so closing it never closes sys.stdin."""

    def __init__(self) -> None:
        self._stdin = anyio.wrap_file(open(os.dup(0), encoding="utf-8", errors="replace"))
        self.answers: collections.deque[JSONRPCError | None] = collections.deque()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async with self._stdin:
            async for line in self._stdin:
                answer = triage(line)
                if answer is True:
                    yield line
                else:
                    self.answers.append(answer)
                    yield _NO_MESSAGE


# How long calls still running when stdin closes may take to be answered before the server exits:
# past any call's own bound (OrchestratorClient's attempts, their timeouts and the backoffs between).
STDIN_CLOSED_GRACE_SECONDS = 300.0


class _CallsInFlight:
    """The requests read from stdin and not yet answered on stdout (a request the client cancels
    gets no answer, so its cancellation settles it too)."""

    def __init__(self) -> None:
        self._ids: collections.Counter[str | int] = collections.Counter()
        self._none_left = anyio.Event()
        self._none_left.set()

    @staticmethod
    def _key(request_id: object) -> str | int | None:
        # As the SDK correlates ids (a cancel naming "9" cancels the call with id 9): one coercion, or
        # a cancelled call would be waited for until the grace ran out.
        return coerce_request_id(request_id) if _is_usable_id(request_id) else None  # type: ignore[arg-type]

    def read(self, message: object) -> None:
        if isinstance(message, JSONRPCRequest) and (key := self._key(message.id)) is not None:
            if not self._ids:
                self._none_left = anyio.Event()
            self._ids[key] += 1
        elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            self._settle(self._key((message.params or {}).get("requestId")))

    def written(self, message: object) -> None:
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            self._settle(self._key(message.id))

    def _settle(self, key: str | int | None) -> None:
        if key is None or key not in self._ids:
            return
        self._ids[key] -= 1
        if self._ids[key] <= 0:
            del self._ids[key]
        if not self._ids:
            self._none_left.set()

    async def all_answered(self) -> None:
        await self._none_left.wait()


class OrchestratorMCPServer(MCPServer):
    """MCPServer whose stdio transport answers every line it cannot read (JSON-RPC 2.0: -32700 for
    text that is no JSON, -32600 for JSON that is no message or a request whose id is unusable)
    instead of dropping it silently, and answers the calls still running when stdin closes before
    it exits (MCP's stdio shutdown starts with the client closing the server's stdin; the SDK
    cancels what is in flight then, so a call whose effect happened, a routed task, went unanswered)."""

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        """Register the tool refusing arguments it does not declare, as the API refuses unknown fields:
        the SDK's argument models drop them, so `requiresApproval: true` routed a task with no gate and
        no error (an outside review). The published schema says so too (additionalProperties false)."""
        super().add_tool(
            fn,
            name=name,
            title=title,
            description=description,
            annotations=annotations,
            icons=icons,
            meta=meta,
            structured_output=structured_output,
        )
        # The SDK keeps its tools in a manager it offers no public reader of; mcp is pinned exactly.
        tool = self._tool_manager.get_tool(name or fn.__name__)
        assert tool is not None
        lenient = tool.fn_metadata.arg_model
        tool.fn_metadata.arg_model = type(
            lenient.__name__,
            (lenient,),
            {"model_config": ConfigDict(**{**lenient.model_config, "extra": "forbid"})},
        )
        tool.parameters = {**tool.parameters, "additionalProperties": False}

    async def run_stdio_async(self) -> None:
        stdin = _StdinLines()
        calls = _CallsInFlight()
        async with stdio_server(stdin=cast("anyio.AsyncFile[str]", stdin)) as (read_stream, write_stream):
            messages_in, messages_out = anyio.create_memory_object_stream[SessionMessage | Exception](0)
            answers_in, answers_out = anyio.create_memory_object_stream[SessionMessage](0)

            async def relay_lines() -> None:
                async with messages_in:
                    async for item in read_stream:
                        if not isinstance(item, Exception):
                            calls.read(item.message)
                            await messages_in.send(item)
                            continue
                        # Nothing queued would mean a line triage passed and the SDK refused after
                        # all: answered too, without its id.
                        answer = stdin.answers.popleft() if stdin.answers else _invalid_request()
                        if answer is not None:
                            await write_stream.send(SessionMessage(answer))
                    # stdin is closed: the SDK's end of input would cancel the calls in flight.
                    with anyio.move_on_after(STDIN_CLOSED_GRACE_SECONDS):
                        await calls.all_answered()

            async def relay_answers() -> None:
                async with write_stream, answers_out:
                    async for item in answers_out:
                        try:
                            await write_stream.send(item)
                        except anyio.BrokenResourceError:
                            pass  # stdout is gone (main says so once): the answer has nowhere to go
                        calls.written(item.message)

            async with anyio.create_task_group() as group:
                group.start_soon(relay_lines)
                group.start_soon(relay_answers)
                lowlevel = self._lowlevel_server
                await lowlevel.run(messages_out, answers_in, lowlevel.create_initialization_options())


def build_server(client: OrchestratorClient) -> MCPServer:
    server = OrchestratorMCPServer(name="orchestrator", instructions=INSTRUCTIONS)

    @server.tool(
        description="Route a task to another role's inbox. Returns its task_id and status (pending, or "
        "awaiting_approval with requires_approval). The task comes from the role of your token."
    )
    def send_task(
        to_role: Role,
        type: Annotated[
            str, Field(min_length=1, max_length=100, description="Kind of work, e.g. invoice.review or deploy.")
        ],
        payload: Annotated[dict[str, Any], Field(description="The work item: any JSON object the receiver reads.")],
        requires_approval: Annotated[
            bool, Field(strict=True, description="Hold the task until approver_role approves it.")
        ] = False,
        approver_role: Annotated[
            str | None,
            Field(min_length=1, max_length=64, description="Role that must approve; required with requires_approval."),
        ] = None,
        trace_id: TraceId = None,
    ) -> TaskRouted:
        try:
            task = client.route_task(
                to_role=to_role,
                type=type,
                payload=payload,
                requires_approval=requires_approval,
                approver_role=approver_role,
                trace_id=trace_id,
            )
        except OrchestratorError as exc:
            raise tool_error(exc) from exc
        return TaskRouted(
            task_id=task.task_id, status=task.status, approval_id=task.approval_id, trace_id=task.trace_id
        )

    @server.tool(
        description="Ask a human of approver_role to approve or reject a task; the task waits until they decide. "
        "An approval not decided within expires_in seconds expires and the task is cancelled (never approved)."
    )
    def request_approval(
        task_id: Annotated[UUID, Field(description="Id of the task to gate, as returned by send_task.")],
        approver_role: Role,
        notes: Annotated[
            str | None, Field(max_length=10_000, description="What the approver should know or check.")
        ] = None,
        expires_in: Annotated[
            int | None,
            Field(strict=True, ge=1, description="Seconds until the approval expires; the server default if omitted."),
        ] = None,
    ) -> ApprovalRequested:
        try:
            approval = client.request_approval(
                task_id=task_id, approver_role=approver_role, notes=notes, expires_in=expires_in
            )
        except OrchestratorError as exc:
            raise tool_error(exc) from exc
        return ApprovalRequested(
            approval_id=approval.approval_id,
            status=approval.status,
            task_id=approval.task_id,
            expires_at=approval.expires_at,
            trace_id=approval.trace_id,
        )

    @server.tool(
        description="Ask the server's policy whether you may call a tool with these exact arguments, before you "
        "call it. allow: go ahead, once. deny: do not. require_approval: a human must approve this exact call; "
        "check again with the same arguments once approval_id is approved (fetch_status)."
    )
    def check_policy(
        tool: Annotated[str, Field(min_length=1, max_length=200, description="The tool you are about to call.")],
        arguments: Annotated[
            dict[str, Any] | None, Field(description="The exact arguments you will call it with.")
        ] = None,
    ) -> PolicyChecked:
        try:
            decision = client.check_policy(tool=tool, arguments=arguments or {})
        except OrchestratorError as exc:
            raise tool_error(exc) from exc
        return PolicyChecked(
            decision=decision.decision,
            rule=decision.rule,
            reason=decision.reason,
            version=decision.version,
            approval_id=decision.approval_id,
        )

    @server.tool(description="Send a short message to every agent of a role; they read and acknowledge it.")
    def notify(
        to_role: Role,
        message: Annotated[str, Field(min_length=1, max_length=10_000, description="The message text.")],
        session_id: Annotated[UUID | None, Field(description="Session the message is about, if any.")] = None,
        trace_id: TraceId = None,
    ) -> NotificationSent:
        try:
            notification = client.notify(to_role=to_role, message=message, session_id=session_id, trace_id=trace_id)
        except OrchestratorError as exc:
            raise tool_error(exc) from exc
        return NotificationSent(
            notification_id=notification.notification_id,
            to_role=notification.to_role,
            trace_id=notification.trace_id,
        )

    @server.tool(
        description="The current status of a session, task or approval by its id, in one word: a session is "
        "pending, active, completed, failed or expired; a task pending, awaiting_approval, claimed, completed, "
        "failed or cancelled; an approval pending, approved, rejected or expired. An id that names nothing "
        "you may see answers 'not_found: session not found'."
    )
    def fetch_status(
        id: Annotated[UUID, Field(description="Id of a session, task or approval.")],
    ) -> str:
        try:
            return client.status_of(id).status
        except NotFound:
            return "not_found: session not found"
        except OrchestratorError as exc:
            raise tool_error(exc) from exc

    @server.tool(
        description="Claim work addressed to your role under a lease: the next due task (highest priority, "
        "oldest first) or, with task_id, that task. Returns the task with its lease_token; task_id is null when "
        "nothing is waiting. Keep the lease alive with heartbeat_task, finish with complete_task or fail_task."
    )
    def claim_task(
        task_id: Annotated[UUID | None, Field(description="Claim this task instead of the next one.")] = None,
        to_role: Annotated[
            str | None, Field(min_length=1, max_length=64, description="Inbox to claim from (staff only).")
        ] = None,
        lease_seconds: LeaseSeconds = None,
    ) -> TaskClaimed:
        try:
            if task_id is not None:
                task = client.claim_task(task_id, lease_seconds=lease_seconds)
            else:
                task = client.claim_next(to_role, lease_seconds=lease_seconds)
        except OrchestratorError as exc:
            raise tool_error(exc) from exc
        if task is None:
            return TaskClaimed(task_id=None)
        return TaskClaimed(
            task_id=task.task_id,
            type=task.type,
            payload=task.payload,
            attempt=task.attempt,
            max_attempts=task.max_attempts,
            lease_token=task.lease_token,
            lease_expires_at=task.lease_expires_at,
            trace_id=task.trace_id,
        )

    @server.tool(
        description="Extend your lease on a claimed task while you work on it (call it well before "
        "lease_expires_at). A conflict means the lease passed to another agent: stop working on the task."
    )
    def heartbeat_task(task_id: TaskId, lease_token: LeaseToken, lease_seconds: LeaseSeconds = None) -> TaskLease:
        try:
            return _lease(client.heartbeat_task(task_id, lease_token=lease_token, lease_seconds=lease_seconds))
        except OrchestratorError as exc:
            raise tool_error(exc) from exc

    @server.tool(description="Finish a task you claimed with its result. Needs the lease_token of your claim.")
    def complete_task(
        task_id: TaskId,
        lease_token: LeaseToken,
        result: Annotated[Any, Field(description="The outcome: any JSON value the sender reads.")] = None,
    ) -> TaskLease:
        try:
            return _lease(client.complete_task(task_id, lease_token=lease_token, result=result))
        except OrchestratorError as exc:
            raise tool_error(exc) from exc

    @server.tool(
        description="Report that a task you claimed failed. With retry=true it is tried again later (after a "
        "backoff) while attempts remain, else it becomes a dead letter for staff to look at."
    )
    def fail_task(
        task_id: TaskId,
        lease_token: LeaseToken,
        error: Annotated[Any, Field(description="What went wrong: any JSON value.")] = None,
        retry: Annotated[bool, Field(strict=True, description="Try the task again later.")] = False,
    ) -> TaskLease:
        try:
            return _lease(client.fail_task(task_id, lease_token=lease_token, error=error, retry=retry))
        except OrchestratorError as exc:
            raise tool_error(exc) from exc

    return server


def main() -> None:
    try:
        client = OrchestratorClient.from_env()
    except ValueError as exc:
        # A configuration error (ORCHESTRATOR_URL, a number that is none): one line saying what to fix,
        # in the log the host keeps of our stderr, rather than a server answering every call with it.
        print(f"orchestrator-mcp: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        build_server(client).run("stdio")
    except* BrokenPipeError:
        # The host closed our stdout (it exited, or stopped reading): nobody is left to answer, which
        # is no error of the server's. One line, not the task group's traceback of every writer.
        print("orchestrator-mcp: the host closed stdout; stopping.", file=sys.stderr)
        # Python's own flush of stdout at exit would meet the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
