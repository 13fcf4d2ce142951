"""Running a job or an API caller on a thread of its own, beside the test's."""

import threading

from django.db import connection


def run_in_thread(target, *args):
    """Start `target(*args)` on its own thread (and database connection, closed when it ends); return
    the thread and the list its exception, if any, lands in for the test to surface."""
    errors = []

    def run():
        try:
            target(*args)
        except BaseException as exc:  # surfaced to the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors
