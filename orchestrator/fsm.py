"""The base of every model with a state machine (Session, Task, Approval)."""

import functools

from django.db.models import Model
from django_fsm import ConcurrentTransitionMixin, FSMFieldMixin


class ConcurrentTransitions(ConcurrentTransitionMixin):
    """django-fsm's ConcurrentTransitionMixin (a save writes only if the row still has the state it
    was read with), its state fields found once per model. django-fsm looks for them among all the
    model's fields every time an instance is made: a twentieth of the CPU of GET /sessions/{id}
    (docs/benchmarks.md)."""

    @property
    def state_fields(self):
        return _state_fields_of(type(self))


@functools.cache
def _state_fields_of(model: type[Model]) -> tuple[FSMFieldMixin, ...]:
    return tuple(field for field in model._meta.fields if isinstance(field, FSMFieldMixin))
