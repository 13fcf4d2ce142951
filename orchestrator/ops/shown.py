"""How much of one agent-written value a console or admin list shows.

Agents write payloads, metadata, errors and transcript messages of up to a request body each (1 MiB),
and a list page shows hundreds of them; escaped as HTML each grows several times. Unbounded, one
trace page of an agent's making ran to 318 MB and 1.3 GB of a worker's memory (an outside review).
A list (of tasks, approvals, a trace's events, a transcript's messages) shows the first
SHOWN_CHARACTERS of each value and says how much is left; an approval's own page shows what it holds
whole (the person decides on it), and the API shows everything.
"""

SHOWN_CHARACTERS = 4000


def shown(value):
    text = value if isinstance(value, str) else str(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}\n… {len(text) - SHOWN_CHARACTERS:,} more characters, not shown here"
