"""A person's rights are on the audit record: whether they are active, staff or superuser, their
groups (`approver:<role>` among them: the roles whose approvals they decide, docs/auth.md) and their
permissions, their own and their groups'. Django's admin changes these without any service of ours,
so every change is caught where it is written (model signals) and recorded as one
`person.rights_changed` event per person concerned, through the audit recorder the token services
use (identity may not import the audit app). Without it, who gave someone approval authority was
only in Django's editable LogEntry (found by an outside review).

Covered: saving a user (the admin's forms, createsuperuser, an OIDC sign-in), adding, removing,
setting and clearing groups and permissions from either side of the relation, renaming a group,
changing a group's permissions (an event for each of its members), and deleting a user or a group
(Django deletes their memberships without any m2m signal). Not covered, because no signal sees them:
`QuerySet.update()`, `bulk_create()` and SQL by hand on these tables; none of our code changes
rights that way (docs/auth.md).

The actor is whoever `acting_as` (orchestrator.identity.acting) names: the signed-in person in the
admin's views (orchestrator.ops.admin_site), `system:oidc_login` for a sign-in's own updates,
`system:<command>` for a manage.py command, `system` otherwise. The events are filed under no role (only staff read
them): a person is no role's object, and a role's agents have no business with people's accounts.
"""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save

from orchestrator.identity import tokens
from orchestrator.identity.acting import current_actor
from orchestrator.telemetry.logs import current_trace_id

EVENT_TYPE = "person.rights_changed"
RIGHTS = ("is_active", "is_staff", "is_superuser")


def _record(user: Any, changes: dict[str, Any]) -> None:
    trace_id = current_trace_id.get()
    tokens.record_audit_event(
        event_type=EVENT_TYPE,
        actor=current_actor(),
        role=None,
        actor_role="",
        trace_id="" if trace_id == "-" else trace_id,
        target_type="person",
        target_id=user.pk,
        metadata={"username": user.get_username(), **changes},
    )


def _members(groups: Iterable[int]) -> Any:
    return get_user_model()._base_manager.filter(groups__in=list(groups)).distinct().order_by("pk")


def _permission_names(permissions: Iterable[int]) -> dict[int, str]:
    rows = Permission.objects.filter(pk__in=list(permissions)).values_list("pk", "content_type__app_label", "codename")
    return {pk: f"{app_label}.{codename}" for pk, app_label, codename in rows}


# --- is_active, is_staff, is_superuser; a person created or deleted -----------------------------


def _rights_before(sender: Any, instance: Any, update_fields: Any = None, using: str = "default", **_: Any) -> None:
    # Only the rights this save writes: a save naming other fields (the last_login stamp of every
    # sign-in) changes none, and one naming some leaves the others as the database has them.
    saved = [right for right in RIGHTS if update_fields is None or right in update_fields]
    before = None
    if instance.pk is not None and saved:
        before = sender._base_manager.using(using).filter(pk=instance.pk).values(*saved).first()
    instance._rights_before = (saved, before)


def _rights_after(sender: Any, instance: Any, created: bool, **_: Any) -> None:
    saved, before = getattr(instance, "_rights_before", ((), None))
    if before is None and not created:
        return
    # A new person had no right before.
    before = before or dict.fromkeys(saved, False)
    changed = {
        right: {"before": before[right], "after": getattr(instance, right)}
        for right in saved
        if before[right] != getattr(instance, right)
    }
    if changed or created:
        _record(instance, {"created": True, **changed} if created else changed)


def _person_deleted(sender: Any, instance: Any, **_: Any) -> None:
    # Before Django deletes the memberships with the person, without any m2m signal.
    changes: dict[str, Any] = {"deleted": True}
    changes.update({right: {"before": True, "after": False} for right in RIGHTS if getattr(instance, right)})
    groups = sorted(instance.groups.values_list("name", flat=True))
    permissions = sorted(_permission_names(instance.user_permissions.values_list("pk", flat=True)).values())
    if groups:
        changes["groups_removed"] = groups
    if permissions:
        changes["permissions_removed"] = permissions
    _record(instance, changes)


# --- A group renamed or deleted ------------------------------------------------------------------


def _group_name_before(sender: Any, instance: Group, using: str = "default", **_: Any) -> None:
    before = None
    if instance.pk is not None:
        before = Group._base_manager.using(using).filter(pk=instance.pk).values_list("name", flat=True).first()
    instance._name_before = before  # type: ignore[attr-defined]


def _group_renamed(sender: Any, instance: Group, created: bool, **_: Any) -> None:
    # Approver groups are read by name: a rename takes the old name's rights from every member and
    # gives them the new one's.
    before = getattr(instance, "_name_before", None)
    if created or before is None or before == instance.name:
        return
    for user in _members([instance.pk]):
        _record(user, {"groups_removed": [before], "groups_added": [instance.name]})


def _group_deleted(sender: Any, instance: Group, **_: Any) -> None:
    for user in _members([instance.pk]):
        _record(user, {"groups_removed": [instance.name]})


# --- Memberships and permissions (m2m), either side ----------------------------------------------

# What each relation is called in an event: (owner column, target column, "added" key, "removed" key).
# The owner is the model the field is declared on (a user for groups and user_permissions, a group
# for its permissions); `reverse` is True when the change comes from the target's side.
_RELATIONS: dict[Any, tuple[str, str, str, str]] = {}


def _links(sender: Any, instance: Model, reverse: bool, pk_set: set[int] | None, using: str) -> set[tuple[int, int]]:
    """The (owner, target) links of this change that exist now: for a remove, the ones it will
    delete (Django sends every id it was given, member or not); for a clear, all of them."""
    owner, target = _RELATIONS[sender][:2]
    mine, others = (target, owner) if reverse else (owner, target)
    rows = sender._base_manager.using(using).filter(**{f"{mine}_id": instance.pk})
    if pk_set is not None:
        rows = rows.filter(**{f"{others}_id__in": list(pk_set)})
    return set(rows.values_list(f"{owner}_id", f"{target}_id"))


def _links_given(instance: Model, reverse: bool, pk_set: set[int]) -> set[tuple[int, int]]:
    # post_add's pk_set holds only the links the add made (Django leaves out the existing ones).
    return {(other, instance.pk) if reverse else (instance.pk, other) for other in pk_set}


def _m2m_changed(
    sender: Any, instance: Model, action: str, reverse: bool, pk_set: set[int] | None, using: str, **_: Any
) -> None:
    leaving: dict[Any, set[tuple[int, int]]] = instance.__dict__.setdefault("_rights_links_leaving", {})
    if action in ("pre_remove", "pre_clear"):
        leaving[sender] = _links(sender, instance, reverse, None if action == "pre_clear" else pk_set, using)
        return
    if action == "post_add" and pk_set:
        _record_links(sender, _links_given(instance, reverse, pk_set), added=True)
    elif action in ("post_remove", "post_clear"):
        _record_links(sender, leaving.pop(sender, set()), added=False)


def _record_links(sender: Any, links: set[tuple[int, int]], *, added: bool) -> None:
    if not links:
        return
    owner, target, added_key, removed_key = _RELATIONS[sender]
    key = added_key if added else removed_key
    targets_of: dict[int, set[int]] = {}
    for owner_pk, target_pk in links:
        targets_of.setdefault(owner_pk, set()).add(target_pk)
    if target == "group":
        names = dict(Group.objects.filter(pk__in={pk for _, pk in links}).values_list("pk", "name"))
    else:
        names = _permission_names(pk for _, pk in links)
    if owner == "user":
        for user in get_user_model()._base_manager.filter(pk__in=list(targets_of)).order_by("pk"):
            _record(user, {key: sorted(names[pk] for pk in targets_of[user.pk])})
        return
    # A group's permissions: every member's rights change with them.
    for group in Group.objects.filter(pk__in=list(targets_of)).order_by("pk"):
        for user in _members([group.pk]):
            _record(user, {key: sorted(names[pk] for pk in targets_of[group.pk]), "through_group": group.name})


def connect() -> None:
    """Called once at start (IdentityConfig.ready)."""
    user_model = get_user_model()
    _RELATIONS.update(
        {
            user_model.groups.through: ("user", "group", "groups_added", "groups_removed"),
            user_model.user_permissions.through: ("user", "permission", "permissions_added", "permissions_removed"),
            Group.permissions.through: ("group", "permission", "permissions_added", "permissions_removed"),
        }
    )
    pre_save.connect(_rights_before, sender=user_model, dispatch_uid="people_rights_before")
    post_save.connect(_rights_after, sender=user_model, dispatch_uid="people_rights_after")
    pre_delete.connect(_person_deleted, sender=user_model, dispatch_uid="people_person_deleted")
    pre_save.connect(_group_name_before, sender=Group, dispatch_uid="people_group_name_before")
    post_save.connect(_group_renamed, sender=Group, dispatch_uid="people_group_renamed")
    pre_delete.connect(_group_deleted, sender=Group, dispatch_uid="people_group_deleted")
    for through in _RELATIONS:
        m2m_changed.connect(_m2m_changed, sender=through, dispatch_uid=f"people_{through._meta.label_lower}")
