"""How much of one agent-written value a console or admin list shows.

Agents write payloads, metadata, errors and transcript messages of up to a request body each (1 MiB),
and a list page shows hundreds of them; escaped as HTML each grows several times. Unbounded, one
trace page of an agent's making ran to 318 MB and 1.3 GB of a worker's memory (an outside review).
A list (of tasks, approvals, a trace's events, a transcript's messages) shows the first
SHOWN_CHARACTERS of each value and says how much is left; an approval's own page shows what it holds
whole (the person decides on it), and the API shows everything.
"""

from django.db.models.functions import Length, Substr

SHOWN_CHARACTERS = 4000


def shown(value):
    text = value if isinstance(value, str) else str(value)
    return _cut(text[:SHOWN_CHARACTERS], len(text))


def with_shown_head(queryset, column):
    """`queryset` without the text column `column`, but with what `shown_head` shows of it: its first
    SHOWN_CHARACTERS and its length, cut by the database. An admin list of 100 notifications or 200
    messages of 100,000 characters each otherwise loaded all of them to show 4,000 of each."""
    return queryset.defer(column).annotate(
        **{f"{column}_head": Substr(column, 1, SHOWN_CHARACTERS), f"{column}_length": Length(column)}
    )


def shown_head(row, column):
    """`shown` of `row`'s text column `column`, from a row of a `with_shown_head` queryset."""
    return _cut(getattr(row, f"{column}_head"), getattr(row, f"{column}_length"))


def _cut(head, length):
    if length <= SHOWN_CHARACTERS:
        return head
    return f"{head}\n… {length - SHOWN_CHARACTERS:,} more characters, not shown here"
