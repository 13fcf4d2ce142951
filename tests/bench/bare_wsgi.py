"""The server's own limit: a WSGI callable that answers a constant, served by the same gunicorn
settings as the apps it is compared with. No Django, no database: what is left is gunicorn, the
kernel's loopback and the load generator, which every contender pays too.

    gunicorn tests.bench.bare_wsgi:application
"""

BODY = b'{"status": "ok"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
