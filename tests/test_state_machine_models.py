"""Every model with a state machine refuses a save whose row moved on since it was read
(django-fsm's ConcurrentTransitionMixin, its state fields found once per model)."""

import pytest
from django_fsm import ConcurrentTransition, ConcurrentTransitionMixin, FSMFieldMixin

from approvals.models import Approval
from routing.models import Task
from sessions.models import Session


@pytest.mark.parametrize("model", [Session, Task, Approval])
def test_the_state_fields_are_the_ones_django_fsm_finds(model):
    found_by_django_fsm = [field for field in model._meta.fields if isinstance(field, FSMFieldMixin)]

    assert list(model().state_fields) == found_by_django_fsm
    assert isinstance(model(), ConcurrentTransitionMixin)


@pytest.mark.django_db
def test_a_save_of_a_session_read_before_another_moved_it_is_refused():
    session = Session.objects.create(role="finance", owner="agent")
    stale = Session.objects.get(pk=session.pk)
    session.activate()
    session.save()

    stale.activate()
    with pytest.raises(ConcurrentTransition):
        stale.save()
