"""Every model with a state machine refuses a save whose row moved on since it was read
(django-fsm's ConcurrentTransitionMixin, its state fields found once per model)."""

import datetime

import pytest
from django.utils import timezone
from django_fsm import ConcurrentTransition, ConcurrentTransitionMixin, FSMFieldMixin

from approvals.models import Approval
from routing.models import Task
from sessions.models import Session


@pytest.mark.parametrize("model", [Session, Task, Approval])
def test_the_state_fields_are_the_ones_django_fsm_finds(model):
    found_by_django_fsm = [field for field in model._meta.fields if isinstance(field, FSMFieldMixin)]

    assert list(model().state_fields) == found_by_django_fsm
    assert isinstance(model(), ConcurrentTransitionMixin)


def _session():
    return Session.objects.create(role="finance", owner="agent"), "activate"


def _task():
    task = Task.objects.create(type="t", from_role="finance", to_role="engineering", trace_id="t", created_by="agent")
    return task, "claim"


def _approval():
    task, _ = _task()
    approval = Approval.objects.create(
        task=task,
        approver_role="manager",
        requested_by="agent",
        expires_at=timezone.now() + datetime.timedelta(hours=1),
    )
    return approval, "approve"


@pytest.mark.django_db
@pytest.mark.parametrize("make", [_session, _task, _approval], ids=["session", "task", "approval"])
def test_a_save_of_a_row_read_before_another_moved_it_is_refused(make):
    row, transition = make()
    stale = type(row).objects.get(pk=row.pk)
    getattr(row, transition)()
    row.save()

    getattr(stale, transition)()
    with pytest.raises(ConcurrentTransition):
        stale.save()
