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
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connections
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save

from orchestrator.identity import tokens
from orchestrator.identity.acting import current_actor
from orchestrator.telemetry.logs import current_trace_id

EVENT_TYPE = "person.rights_changed"
RIGHTS = ("is_active", "is_staff", "is_superuser")
# Recorded beside the rights: a person acts as `user:<username>` (decided_by, votes, separation of
# duties), so a rename moves their authority and history to another name.
NAME = "username"


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


def _as_stored(model: Any, pk: Any, fields: list[str], using: str) -> dict[str, Any] | None:
    """The row's `fields` as committed, locked against other saves until the saving transaction ends
    where there is one: two admins saving the same person at once are then recorded one after the
    other, the second against what the first wrote (found by an outside review: its change was
    compared with values read before the first committed, and a flag set back went unrecorded)."""
    rows = model._base_manager.using(using).filter(pk=pk)
    if connections[using].in_atomic_block:
        # FOR NO KEY UPDATE, the lock the save's UPDATE takes anyway: FOR UPDATE would also stop every
        # row referring to this one being written meanwhile (the admin's LogEntry naming the acting
        # admin), and two admins saving each other crossed into a deadlock (an outside review).
        rows = rows.select_for_update(no_key=True)
    return rows.values(*fields).first()


def _rights_before(sender: Any, instance: Any, update_fields: Any = None, using: str = "default", **_: Any) -> None:
    # Only the rights this save writes: a save naming other fields (the last_login stamp of every
    # sign-in) changes none, and one naming some leaves the others as the database has them.
    saved = [field for field in (*RIGHTS, NAME) if update_fields is None or field in update_fields]
    before = None
    if instance.pk is not None and saved:
        before = _as_stored(sender, instance.pk, saved, using)
    instance._rights_before = (saved, before)


def _rights_after(sender: Any, instance: Any, created: bool, **_: Any) -> None:
    saved, stored = getattr(instance, "_rights_before", ((), None))
    if created:
        # A new person had no right before (and no name to change).
        before: dict[str, Any] = {field: getattr(instance, NAME) if field == NAME else False for field in saved}
    elif stored is None:
        return
    else:
        before = stored
    changed = {
        field: {"before": before[field], "after": getattr(instance, field)}
        for field in saved
        if before[field] != getattr(instance, field)
    }
    if NAME in changed:
        # `username` in every event is the name the person has now.
        changed["renamed"] = changed.pop(NAME)
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
        stored = _as_stored(Group, instance.pk, ["name"], using)
        before = stored["name"] if stored is not None else None
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


class _Change(NamedTuple):
    """Links of one m2m change, described while they exist: for a removal, before the rows go (a
    group deleted meanwhile by another transaction leaves no name to read afterwards)."""

    links: set[tuple[int, int]]
    names: dict[int, str]
    # For memberships: each group's permissions, which the person gains or loses with it. A group
    # given a permission while it had no member records nothing (no person's rights changed then);
    # whoever joins it later is recorded gaining that permission.
    group_permissions: dict[int, list[str]]


_NOTHING = _Change(set(), {}, {})


def _described(sender: Any, links: set[tuple[int, int]]) -> _Change:
    if not links:
        return _NOTHING
    owner, target = _RELATIONS[sender][:2]
    targets = {pk for _, pk in links}
    if target == "group":
        names = dict(Group.objects.filter(pk__in=targets).values_list("pk", "name"))
    else:
        names = _permission_names(targets)
    group_permissions: dict[int, list[str]] = {}
    if (owner, target) == ("user", "group"):
        granted = Group.permissions.through.objects.filter(group_id__in=targets).values_list(
            "group_id", "permission__content_type__app_label", "permission__codename"
        )
        for group_pk, app_label, codename in granted:
            group_permissions.setdefault(group_pk, []).append(f"{app_label}.{codename}")
    return _Change(links, names, {pk: sorted(names) for pk, names in group_permissions.items()})


def _m2m_changed(
    sender: Any, instance: Model, action: str, reverse: bool, pk_set: set[int] | None, using: str, **_: Any
) -> None:
    leaving: dict[Any, _Change] = instance.__dict__.setdefault("_rights_links_leaving", {})
    if action in ("pre_remove", "pre_clear"):
        links = _links(sender, instance, reverse, None if action == "pre_clear" else pk_set, using)
        leaving[sender] = _described(sender, links)
        return
    if action == "post_add" and pk_set:
        _record_links(sender, _described(sender, _links_given(instance, reverse, pk_set)), added=True)
    elif action in ("post_remove", "post_clear"):
        _record_links(sender, leaving.pop(sender, _NOTHING), added=False)


def _record_links(sender: Any, change: _Change, *, added: bool) -> None:
    if not change.links:
        return
    owner, target, added_key, removed_key = _RELATIONS[sender]
    key = added_key if added else removed_key
    targets_of: dict[int, set[int]] = {}
    for owner_pk, target_pk in change.links:
        targets_of.setdefault(owner_pk, set()).add(target_pk)

    def named(pks: Iterable[int]) -> list[str]:
        return sorted(change.names.get(pk, f"#{pk}") for pk in pks)

    if owner == "user":
        for user in get_user_model()._base_manager.filter(pk__in=list(targets_of)).order_by("pk"):
            changes: dict[str, Any] = {key: named(targets_of[user.pk])}
            through = {
                change.names.get(pk, f"#{pk}"): change.group_permissions[pk]
                for pk in sorted(targets_of[user.pk])
                if change.group_permissions.get(pk)
            }
            if through:
                changes["permissions_through_groups"] = through
            _record(user, changes)
        return
    # A group's permissions: every member's rights change with them.
    for group in Group.objects.filter(pk__in=list(targets_of)).order_by("pk"):
        for user in _members([group.pk]):
            _record(user, {key: named(targets_of[group.pk]), "through_group": group.name})


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
