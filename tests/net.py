"""Network helpers for tests and benchmarks that start their own servers on loopback."""

import socket


def free_port():
    """A loopback port nothing listens on right now, picked by the kernel."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
