"""Pages and batches bounded by bytes as well as rows: every list of the API and the console, the
audit stream, the webhook dispatcher, the sealer, verify_audit and the exports read through
bounded_page, so that no request or job loads more than LIST_PAGE_MAX_BYTES of large columns at once
(docs/decisions.md, "A page is bounded by bytes too"). Only Django here: the audit app imports it
when it starts, in processes that install nothing else (tests/bench/naive_app.py)."""

import operator
from functools import reduce

from django.conf import settings
from django.db.models import BigIntegerField, Count, F, Func, Sum, Value, Window
from django.db.models.expressions import RowRange
from django.db.models.functions import Coalesce

# The annotations a bounded page's rows carry: the rows its slice held before the budget ended it,
# and the bytes of the rows before each.
_PAGE_ROWS = "page_rows_in_slice"
_BYTES_BEFORE = "page_bytes_before"


class _StoredBytes(Func):
    """Bytes of a column's text as the database writes it out (jsonb as its JSON text): what loading
    the row costs, and close to what rendering it does."""

    template = "OCTET_LENGTH(CAST(%(expressions)s AS TEXT))"
    # Summed over a page and compared with the budget: a budget of 2 GiB or more must compare as a
    # bigint (an integer lookup past 32 bits failed every bounded read on PostgreSQL).
    output_field = BigIntegerField()

    def as_sqlite(self, compiler, connection, **extra_context):
        template = "LENGTH(CAST(CAST(%(expressions)s AS TEXT) AS BLOB))"
        return self.as_sql(compiler, connection, template=template, **extra_context)


def large_columns(model, *related):
    """The large columns a page of `model` loads: its own (the model's LARGE_COLUMNS), and those of
    each related row it loads with it (`related`: the select_related names)."""
    columns = list(getattr(model, "LARGE_COLUMNS", ()))
    for name in related:
        target = model._meta.get_field(name).related_model
        columns += [f"{name}__{column}" for column in getattr(target, "LARGE_COLUMNS", ())]
    return tuple(columns)


def bounded_page(queryset, *, ordering, stop, sized, start=0):
    """Rows `start` to `stop` of `queryset` in `ordering`, ending after the row whose large columns
    (`sized`: field paths such as "metadata" or "task__payload", none for a page that loads none)
    bring the page to LIST_PAGE_MAX_BYTES. One statement: the database counts the bytes, so rows past
    the budget are never loaded, and a page holds at least one row whatever its size. Without it 200
    rows of 1 MiB were one answer of 200 MB, held in a worker's memory several times over. Each row
    carries _PAGE_ROWS, which more_may_follow reads."""
    ordered = queryset.order_by(*ordering)
    window_order = [F(name[1:]).desc() if name.startswith("-") else F(name).asc() for name in ordering]
    size = reduce(
        operator.add, [Coalesce(_StoredBytes(F(path)), 0) for path in sized], Value(0, output_field=BigIntegerField())
    )
    before = Window(Sum(size), order_by=window_order, frame=RowRange(start=None, end=-1))
    return (
        ordered.filter(pk__in=ordered[start:stop].values("pk"))
        .annotate(
            **{_BYTES_BEFORE: Coalesce(before, 0, output_field=BigIntegerField()), _PAGE_ROWS: Window(Count("pk"))}
        )
        .filter(**{f"{_BYTES_BEFORE}__lt": settings.LIST_PAGE_MAX_BYTES})
    )


def more_may_follow(rows, stop):
    """Whether rows may follow `rows`, loaded from a bounded_page sliced at `stop`: its slice was full,
    or the byte budget ended it before its slice did. Every reader asks this: counting rows alone
    took a page the budget ended for the last one."""
    return len(rows) == stop or _was_cut(rows)


def _was_cut(rows):
    return bool(rows) and len(rows) < getattr(rows[0], _PAGE_ROWS)


def next_slice(stop, rows, *, most):
    """The slice to ask for after `rows`, a bounded_page of `stop` rows, in a walk of pages of at most
    `most`: twice what fitted when the budget cut it, else twice `stop`. The database sizes the whole
    slice to give the rows that fit, so a walk over large rows with a fixed slice of 1,000 sized each
    row hundreds of times (an outside review: sealing became quadratic); this way about twice."""
    if _was_cut(rows):
        return min(most, max(2 * len(rows), 8))
    return min(most, 2 * stop)
