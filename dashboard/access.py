"""Who may use which part of the console: staff, holding the Django permission of what a page shows.

The admin's rules, applied here too: a staff account with no permissions sees nothing (403),
reading a page needs the view permission of its model, a write needs the change permission.
Approvals are further limited to the roles whose group `approver:<role>` the person is in.
"""

from functools import wraps

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.utils.crypto import constant_time_compare

APPROVER_GROUP_PREFIX = "approver:"

# The agents' sessions (app label agent_sessions), not django.contrib.sessions' login sessions, whose
# permission has the label "sessions" and was checked here by mistake (found by an outside review).
VIEW_SESSIONS = "agent_sessions.view_session"
VIEW_TASKS = "routing.view_task"
CANCEL_TASKS = "routing.change_task"
VIEW_APPROVALS = "approvals.view_approval"
DECIDE_APPROVALS = "approvals.change_approval"
VIEW_AUDIT = "audit.view_auditevent"
# The overview shows a panel per permission; holding none of them is holding no console access.
ANY_CONSOLE_PERMISSION = (VIEW_SESSIONS, VIEW_TASKS, VIEW_APPROVALS, VIEW_AUDIT)


def console_view(*permissions, any_of=False):
    """Anonymous visitors go to the login page; anyone else needs to be active staff holding
    `permissions` (all of them, or one when `any_of`), else 403."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (user.is_active and user.is_staff):
                raise PermissionDenied
            held = [user.has_perm(permission) for permission in permissions]
            if permissions and not (any(held) if any_of else all(held)):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def still_holds(request, *permissions):
    """Whether the person signed in to `request` is still signed in there and still active staff
    holding `permissions`, read afresh: a long-lived answer (the live stream) asks while it runs,
    and the request's user object keeps the permissions it loaded when the request began."""
    # The session as it is stored now: gone, expired (load() gives nothing then) or no longer this
    # person's, with the password it was signed in with (Django checks the same hash on each request).
    stored = request.session.__class__(request.session.session_key).load()
    if str(stored.get(SESSION_KEY)) != str(request.user.pk):
        return False
    user = get_user_model().objects.filter(pk=request.user.pk).first()
    return (
        user is not None
        and constant_time_compare(stored.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash())
        and user.is_active
        and user.is_staff
        and all(user.has_perm(permission) for permission in permissions)
    )


def approver_roles(user):
    """The roles whose approvals `user` may see and decide; None means every role (superusers)."""
    if user.is_superuser:
        return None
    names = user.groups.filter(name__startswith=APPROVER_GROUP_PREFIX).values_list("name", flat=True)
    return {name.removeprefix(APPROVER_GROUP_PREFIX) for name in names}


def nav_permissions(user):
    """Which console pages the navigation offers `user`."""
    return {
        "sessions": user.has_perm(VIEW_SESSIONS),
        "queues": user.has_perm(VIEW_TASKS),
        "approvals": user.has_perm(VIEW_APPROVALS),
        "audit": user.has_perm(VIEW_AUDIT),
    }
