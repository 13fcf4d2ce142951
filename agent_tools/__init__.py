"""Agent tools: OrchestratorClient (HTTP, retry-safe) and the MCP server built on it.

Nothing here imports Django: an agent's process talks to the orchestrator over HTTP only.
"""

from agent_tools.client import (
    Approval,
    Conflict,
    ControllerError,
    Forbidden,
    InvalidRequest,
    LeaseLost,
    NotFound,
    Notification,
    OrchestratorClient,
    OrchestratorError,
    PermissionRefused,
    PolicyDecision,
    Session,
    Status,
    Task,
    Unauthorized,
    UnsendableRequest,
    WorkItem,
)

__all__ = [
    "Approval",
    "Conflict",
    "ControllerError",
    "Forbidden",
    "InvalidRequest",
    "LeaseLost",
    "NotFound",
    "Notification",
    "OrchestratorClient",
    "OrchestratorError",
    "PermissionRefused",
    "PolicyDecision",
    "Session",
    "Status",
    "Task",
    "Unauthorized",
    "UnsendableRequest",
    "WorkItem",
]
