"""Free loopback ports, for the servers the tests start in other processes (the worker, SeaweedFS)."""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports no one listens on now: all are held until all are found, so none repeats."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    """A loopback port no one listens on now: for a server in another process to take, or to find closed."""
    return free_ports(1)[0]
