"""Response shapes defined once: the OpenAPI schema and the renderer come from one field table,
so what the docs promise and what the API sends cannot drift apart."""

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from orchestrator.http.paging import cursor_page_schema

Source = str | Callable[[Any], Any]
Field = tuple[serializers.Field, Source]


def _through(attribute: str, source: Source) -> Source:
    if callable(source):
        return lambda obj: source(getattr(obj, attribute))
    return f"{attribute}.{source}"


class Shape:
    """A named JSON object: each key has a schema field and a source (an attribute path of the
    rendered object, or a function of it). `render` is a plain dict build, cheap enough for the
    hot paths; `schema` is the serializer drf-spectacular documents."""

    def __init__(self, name: str, fields: dict[str, Field]):
        self.name = name
        self.fields = dict(fields)
        self._getters = [
            (key, source if callable(source) else attrgetter(source)) for key, (_, source) in self.fields.items()
        ]
        self.schema = inline_serializer(name, {key: field for key, (field, _) in self.fields.items()})

    def render(self, obj: Any) -> dict[str, Any]:
        return {key: get(obj) for key, get in self._getters}

    def extended(self, name: str, extra: dict[str, Field], *, through: str | None = None) -> "Shape":
        """This shape plus `extra` fields; with `through`, this shape's fields are read from that
        attribute of the rendered object (a wrapper carrying the object and more)."""
        fields = self.fields
        if through:
            fields = {key: (field, _through(through, source)) for key, (field, source) in fields.items()}
        return Shape(name, {**fields, **extra})

    def page_schema(self, name: str, items_key: str):
        return cursor_page_schema(name, items_key, self.schema)
