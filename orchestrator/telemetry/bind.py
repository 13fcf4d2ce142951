"""METRICS_BIND read as an address, by settings.py at start-up and by the worker's metrics server."""

import ipaddress
import re

# host:port, an IPv6 host in brackets. ASCII only, in the host as in the port: str.isdigit() and int()
# also take other scripts' digits, and the resolver reads a full-width "０" as 0.0.0.0.
_HOST_AND_PORT = re.compile(r"(\[[^\]]+\]|[^\[\]:]+):([0-9]{1,5})")
# A host name or an IPv4 address: dot-separated labels of ASCII letters, digits and inner hyphens.
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def parse_bind(bind: str) -> tuple[str, int]:
    """(host, port) of `bind`; ValueError names what is wrong with it."""
    match = _HOST_AND_PORT.fullmatch(bind)
    if match is None:
        raise ValueError(f"METRICS_BIND must be host:port (an IPv6 host in brackets), got {bind!r}")
    host, port = match[1], int(match[2])
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"METRICS_BIND's host in brackets must be an IPv6 address, got {host!r}") from None
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError(f"METRICS_BIND's host must be a host name or an IP address, got {host!r}")
    # 0: the system picks a free port, which the worker logs (tests use it).
    if port > 65535:
        raise ValueError(f"METRICS_BIND's port must be from 0 to 65535, got {port}")
    return host, port
