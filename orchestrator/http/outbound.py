"""Outbound HTTP whose attempt ends at a deadline over the whole of it.

urllib3's (and so requests') timeouts bound each socket operation, not the request: a peer sending
one byte of a header at a time, or `100 Continue` again and again, holds the caller for as long as
it likes. An AttemptDeadline (orchestrator.attempt_deadline) ends the attempt at its deadline
whatever it waits on; the watched connections and pools there hand it every socket the attempt
uses. webhooks.transport builds its guarded delivery on these; post_for_status is the plain POST of
an operator-configured URL (the audit witness).
"""

import time
from urllib.parse import urlsplit

import urllib3
from urllib3.util import make_headers, parse_url

from orchestrator.attempt_deadline import AttemptDeadline, WatchedHTTPPool, WatchedHTTPSPool


def read_within(
    response: urllib3.BaseHTTPResponse, limit: int, deadline: float, attempt: AttemptDeadline
) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, starting no read after `deadline` (each read waits at most
    the socket's timeout, and the attempt's timer cuts one still waiting at its deadline); returns
    them, the bytes that came before a cut included, and whether the body ended."""
    chunks: list[bytes] = []
    size = 0
    while size < limit and time.monotonic() < deadline:
        try:
            chunk = response.read1(limit - size, decode_content=False)
        except Exception:
            if not attempt.expired:
                raise
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), response.length_remaining == 0


class NoAnswer(Exception):
    """post_for_status got no status: the URL is not usable, the connection or TLS failed, the answer
    was malformed, or (AttemptTimedOut) the attempt's deadline passed first."""


class AttemptTimedOut(NoAnswer):
    """The connect, the TLS handshake, the request, the status line and the headers did not all end
    within the attempt's timeout."""


class HeadersCutOff(urllib3.exceptions.TimeoutError):
    """The attempt's deadline cut the answer off before its headers ended."""


def post_within(
    pool: urllib3.HTTPConnectionPool,
    path: str,
    *,
    body: bytes,
    headers: dict[str, str],
    attempt: AttemptDeadline,
    assert_same_host: bool = True,
) -> urllib3.BaseHTTPResponse:
    """POST through `pool` inside `attempt` (redirects not followed, no retries, the body not yet
    read): the answer once its headers are complete. Cut off mid-headers, http.client takes the end
    of input for their end, so what it parsed is no answer: HeadersCutOff. Headers complete before
    the cut are the answer, however late this check runs."""
    response = pool.urlopen(
        "POST",
        path,
        body=body,
        headers=headers,
        redirect=False,
        retries=False,
        timeout=urllib3.Timeout(total=attempt.seconds),
        preload_content=False,
        assert_same_host=assert_same_host,
    )
    answered_at = time.monotonic()
    if attempt.expired and attempt.expired_at <= answered_at:
        response.close()
        raise HeadersCutOff(f"the answer's headers did not end within {attempt.seconds:g} s")
    return response


def post_for_status(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` to `url`, an http or https URL an operator configured (no SSRF guard: use
    webhooks.transport for URLs users give), and return the answer's status. The certificate of an
    https URL is verified (the system's certificate store), a redirect is not followed (its 3xx is
    the status), user:password in the URL is sent as Basic authentication, and the answer's body is
    never read. The whole attempt, from the connect to the last header, ends by `timeout`, or raises
    AttemptTimedOut; any other failure raises NoAnswer."""
    try:
        parts = parse_url(url)
    except ValueError as exc:
        raise NoAnswer(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.host:
        raise NoAnswer("not an http or https URL")
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = WatchedHTTPSPool(parts.host, parts.port, cert_reqs="CERT_REQUIRED", maxsize=1)
    else:
        pool = WatchedHTTPPool(parts.host, parts.port, maxsize=1)
    if parts.auth:
        headers = {**make_headers(basic_auth=parts.auth), **headers}
    attempt = AttemptDeadline(timeout)
    try:
        with attempt:
            response = post_within(pool, parts.request_uri, body=body, headers=headers, attempt=attempt)
            # Only the status is wanted: the connection is dropped with the body unread.
            response.close()
            return response.status
    except HeadersCutOff as exc:
        raise AttemptTimedOut(str(exc)) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if attempt.expired:
            # Whatever the cut socket raised, the attempt's deadline is what ended it.
            raise AttemptTimedOut(f"no answer within {timeout:g} s") from None
        raise NoAnswer(str(exc)) from exc
    finally:
        pool.close()


def redacted(url: str) -> str:
    """The URL as it may be shown or recorded: scheme, host and port only. The path and query of a
    webhook URL are often the credential itself (a Slack incoming webhook, a `?token=`), and a
    witness URL may carry `user:password@`, so nothing but the origin is kept and anything past the
    host becomes an ellipsis."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(unparseable URL)"
    if not parts.scheme or not parts.hostname:
        return "(unparseable URL)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    rest = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{origin}/…" if rest else f"{origin}/"
