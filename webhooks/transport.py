"""Outbound HTTP for webhooks, with the SSRF guard.

A URL is resolved once per attempt and every address it resolves to must be public (not loopback,
private, link-local -- which holds the cloud metadata address 169.254.169.254 --, shared, reserved or
multicast) unless WEBHOOK_ALLOW_PRIVATE_NETWORKS is true. The connection then goes to the address
that was checked, not to the name, so a DNS answer that changes between the check and the connect
(DNS rebinding) cannot send the request inside. TLS still verifies the certificate for the name
(SNI and hostname check use the name). Redirects are never followed: a 3xx is the receiver's answer.
An internationalised host name is used in its IDNA form (xn--...) for all three: DNS, TLS and the
Host header.
"""

import http.client
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

from orchestrator.attempt_deadline import AttemptDeadline as _AttemptDeadline
from orchestrator.attempt_deadline import WatchedHTTPConnection as _HTTPConnection
from orchestrator.attempt_deadline import WatchedHTTPPool as _HTTPPool
from orchestrator.attempt_deadline import WatchedHTTPSConnection as _HTTPSConnection
from orchestrator.attempt_deadline import WatchedHTTPSPool as _HTTPSPool
from orchestrator.http.outbound import post_within as _post_within
from orchestrator.http.outbound import read_within as _read_within

RESPONSE_EXCERPT_BYTES = 500
# At most this much of an answer past the excerpt is read (and dropped) to keep the connection.
DRAIN_LIMIT_BYTES = 64 * 1024


class UnsafeURL(ValueError):
    """The URL is malformed, or points at an address webhooks may not reach."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    excerpt: str
    latency_ms: int


# IPv6 ranges whose last 32 bits (or, for 6to4, bits 16..48) carry an IPv4 address a translator or
# tunnel on the path delivers to: the IPv4 address is what the request reaches.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")
# Not global, though Python 3.11's table says so: RFC 8215 local-use NAT64, the deprecated site-local
# range, RFC 9602's SRv6 segment identifiers (an operator's inside routing, never a receiver) and RFC
# 9637's documentation prefix.
_INSIDE_IPV6 = (
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("fec0::/10"),
    ipaddress.ip_network("5f00::/16"),
    ipaddress.ip_network("3fff::/20"),
)


# Not global, though Python 3.11's table says so for all but a few of its addresses: the IETF
# protocol assignments (RFC 6890), where Oracle Cloud serves its instance metadata (192.0.0.192).
# Its two globally reachable anycast addresses (.9 and .10) are no webhook receivers either.
# And a public address that is a cloud's own inside service: Azure's WireServer (168.63.129.16),
# which every Azure VM reaches and which hands out its provisioning data and extension settings.
# And the deprecated 6to4 relay anycast (192.88.99.0/24, RFC 7526): whichever relay is nearest
# answers, an operator's tunnel endpoint, no receiver.
_INSIDE_IPV4 = (
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("168.63.129.16/32"),
    ipaddress.ip_network("192.88.99.0/24"),
)

# Characters IDNA 2003 (Python's "idna" codec) maps to others or drops, while IDNA 2008, which
# browsers and registries follow, keeps them: encoded here, such a name would reach another domain
# (straße.example would become strasse.example).
_IDNA_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE or address in _SIIT:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _INSIDE_IPV6):
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            # :: and ::1 sit in the IPv4-compatible range too: 0.0.0.0 and 0.0.0.1 are not public either.
            return is_public(embedded)
    elif any(address in network for network in _INSIDE_IPV4):
        return False
    return address.is_global and not address.is_multicast


def _ascii_host(hostname: str) -> str:
    """The host as DNS, TLS and the Host header take it: an internationalised name in its IDNA form.
    Raw, it failed every attempt (a Host header is latin-1) or reached the receiver as latin-1 bytes."""
    if hostname.isascii():
        return hostname
    if _IDNA_DEVIATIONS & set(hostname):
        raise UnsafeURL(
            f"The host {hostname!r} holds ß, ς or a zero-width joiner, which the IDNA versions encode "
            "differently; give it in its xn-- form."
        )
    try:
        return hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise UnsafeURL(f"The host {hostname!r} is not a valid internationalised domain name: {exc}") from None


def resolve(url: str, *, allow_private: bool) -> Target:
    """Check `url` and pick the address to connect to; raises UnsafeURL."""
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise UnsafeURL("The URL contains whitespace or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"Not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeURL("Credentials in the URL are not allowed; put a token in the path or use the signature.")
    port = port or (443 if parts.scheme == "https" else 80)
    host = _ascii_host(parts.hostname)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"The host {parts.hostname!r} does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeURL(f"The host {parts.hostname!r} does not resolve.")
    if not allow_private:
        refused = [str(a) for a in addresses if not is_public(a)]
        if refused:
            raise UnsafeURL(
                f"The host {parts.hostname!r} resolves to a non-public address ({', '.join(refused)}); "
                "webhooks may not reach loopback, private, link-local or metadata addresses."
            )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=parts.scheme, host=host, port=port, path=path, address=str(addresses[0]))


class _FinalAnswer(http.client.HTTPResponse):
    """The receiver's final answer: interim 1xx responses before it (103 Early Hints, 102 Processing)
    are read past. http.client passes over 100 only, so a 103 was taken for the answer (the event given
    up with "HTTP 103") and the real answer, left on the connection, broke the next attempt. A 101
    stays an answer: nothing asked to switch protocols. An endless run of them ends at the attempt's
    deadline, as an endless header does."""

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if status == 101 or not 100 <= status < 200:
                return version, status, reason
            http.client.parse_headers(self.fp)


class _Connection(_HTTPConnection):
    response_class = _FinalAnswer


class _TLSConnection(_HTTPSConnection):
    response_class = _FinalAnswer


class _Pool(_HTTPPool):
    ConnectionCls = _Connection


class _TLSPool(_HTTPSPool):
    ConnectionCls = _TLSConnection


def open_pool(target: Target) -> urllib3.HTTPConnectionPool:
    """A keep-alive connection to the pinned address, for the attempts of one dispatcher pass."""
    if target.scheme == "https":
        return _TLSPool(
            target.address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            maxsize=1,
        )
    return _Pool(target.address, target.port, maxsize=1)


def post(
    target: Target,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    pool: urllib3.HTTPConnectionPool | None = None,
) -> Response:
    """POST to the pinned address (through `pool` when given, else a connection of its own);
    raises urllib3's errors on timeouts and connection failures. The whole attempt, from the connect
    to the answer's last byte read, ends by `timeout`."""
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and target.port == default_port:
        host_header = f"[{target.host}]"
    elif ":" in target.host:
        host_header = f"[{target.host}]:{target.port}"
    own_pool = pool is None
    pool = pool or open_pool(target)
    attempt = _AttemptDeadline(timeout)
    try:
        with attempt:
            return _exchange(pool, target, body=body, headers={**headers, "Host": host_header}, attempt=attempt)
    except Exception:
        if attempt.expired:
            # Whatever the cut socket raised, the attempt's deadline is what ended it.
            raise urllib3.exceptions.TimeoutError(f"no complete answer within {timeout:g} s") from None
        raise
    finally:
        if own_pool:
            pool.close()


def _exchange(
    pool: urllib3.HTTPConnectionPool, target: Target, *, body: bytes, headers: dict[str, str], attempt: _AttemptDeadline
) -> Response:
    started = time.monotonic()
    timeout = attempt.seconds
    response = _post_within(pool, target.path, body=body, headers=headers, attempt=attempt, assert_same_host=False)
    # The body is read only while the deadline has not passed: an endless body, or one sent a byte
    # at a time, ends at the limit, with what came of it before.
    deadline = started + timeout
    excerpt, ended = _read_within(response, RESPONSE_EXCERPT_BYTES, deadline, attempt)
    if not ended and not attempt.expired:
        # The rest is not wanted; a short rest is read so the connection can be reused.
        ended = _read_within(response, DRAIN_LIMIT_BYTES, deadline, attempt)[1]
    if not ended:
        response.close()  # the connection is dropped, not reused with unread bytes on it
    response.release_conn()
    return Response(
        status=response.status,
        headers={k.lower(): v for k, v in response.headers.items()},
        excerpt=excerpt.decode("utf-8", "replace"),
        latency_ms=int((time.monotonic() - started) * 1000),
    )
