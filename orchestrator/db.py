"""Database reads the hottest paths share: one row by primary key through SQL built once per process.

The ORM compiles a primary-key query anew on every call (and a raw queryset re-derives its column
mapping each time): for GET /sessions/{id} that was most of the request's CPU time
(docs/benchmarks.md). `get_by_pk` builds the statement and the column converters once per model and
then only executes it; what comes back is the same model instance the ORM would have made.
"""

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)

Converter = Callable[[Any, Any, Any], Any]


@functools.cache
def _reader(model: type[Model]) -> tuple[str, list[str], list[tuple[int, Any, list[Converter]]]]:
    """(SQL, attribute names, converters by column) for `model`, on this process's database."""
    opts = model._meta
    quote = connection.ops.quote_name
    fields = opts.concrete_fields
    columns = ", ".join(quote(str(field.column)) for field in fields)
    sql = f"SELECT {columns} FROM {quote(opts.db_table)} WHERE {quote(str(opts.pk.column))} = %s"
    # The same converters the ORM's compiler applies (JSON text to Python, SQLite's UUID strings...).
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(opts.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    return sql, [field.attname for field in fields], converters


def get_by_pk(model: type[M], pk: Any) -> M | None:
    """The `model` row whose primary key is `pk`, or None; no lock, no ordering, no deferred fields."""
    sql, names, converters = _reader(model)
    key = model._meta.pk.get_db_prep_value(pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [key])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, column, functions in converters:
        value = values[index]
        for function in functions:
            value = function(value, column, connection)
        values[index] = value
    return model.from_db(connection.alias, names, values)
