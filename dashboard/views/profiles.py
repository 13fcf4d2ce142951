"""Role profiles in the console: what each role may do now, a role's versions, the diff between two,
and activating one (rollback or forward) through policy.services.activate_version."""

from django.contrib import messages
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import APIException

from dashboard import access
from dashboard.views.common import person
from orchestrator.identity.roles import is_known_role
from policy import selectors, services

VIEW_PROFILES = "policy.view_profileversion"
ACTIVATE_PROFILES = "policy.change_profileversion"


@require_GET
@access.console_view(VIEW_PROFILES)
def profile_list(request):
    return render(
        request,
        "dashboard/profiles.html",
        {"active": selectors.active_versions(), "paused": selectors.paused_roles()},
    )


@require_GET
@access.console_view(VIEW_PROFILES)
def profile_detail(request, role):
    if not is_known_role(role):
        raise Http404("No such role.")
    versions = selectors.profile_versions(role=role)
    if not versions:
        raise Http404("This role has no profile.")
    by_number = {version.version: version for version in versions}
    active = next((version for version in versions if version.is_active), versions[0])
    try:
        # Default: what the active version changed from the one before it.
        new = by_number[int(request.GET.get("new", active.version))]
        old = by_number[int(request.GET.get("old", max(new.version - 1, 1)))]
    except (KeyError, ValueError):
        return HttpResponseBadRequest("old and new must be version numbers of this role.")
    return render(
        request,
        "dashboard/profile.html",
        {
            "role": role,
            "versions": versions,
            "active": active,
            "old": old,
            "new": new,
            "diff": selectors.version_diff(old=old, new=new) if old.pk != new.pk else "",
            "can_activate": request.user.has_perm(ACTIVATE_PROFILES),
        },
    )


@require_POST
@access.console_view(VIEW_PROFILES, ACTIVATE_PROFILES)
def activate(request, role, version):
    if not is_known_role(role):
        raise Http404("No such role.")
    target = next((v for v in selectors.profile_versions(role=role) if v.version == version), None)
    if target is None:
        raise Http404("No such version.")
    try:
        services.activate_version(version_id=target.pk, actor=person(request).subject, trace_id=request.trace_id)
    except APIException as exc:
        messages.error(request, f"{role} v{version} was not activated: {exc.detail}")
    except services.ProfileRefused as refusal:
        # An unsigned version while signatures are required, or a load of the role landing meanwhile.
        messages.error(request, f"{role} v{version} was not activated: {refusal.message}")
    else:
        messages.success(request, f"{role} v{version} is now the active profile.")
    return redirect("dashboard:profile", role=role)
