"""METRICS_BIND read as an address, by settings.py at start-up and by the worker's metrics server."""

import re

# host:port; an IPv6 host in brackets. ASCII digits only: str.isdigit() and int() also take other
# scripts' digits, which no operator means.
_HOST_AND_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\[\]:\s]+):([0-9]{1,5})")


def parse_bind(bind: str) -> tuple[str, int]:
    """(host, port) of `bind`; ValueError names what is wrong with it."""
    match = _HOST_AND_PORT.fullmatch(bind)
    if match is None:
        raise ValueError(f"METRICS_BIND must be host:port (an IPv6 host in brackets), got {bind!r}")
    host, port = match[1].strip("[]"), int(match[2])
    # 0: the system picks a free port, which the worker logs (tests use it).
    if port > 65535:
        raise ValueError(f"METRICS_BIND's port must be from 0 to 65535, got {port}")
    return host, port
