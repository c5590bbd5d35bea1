"""The server's helper processes: how one is started and how it is talked to.

A helper (today the readers of server/reads.py) is
`python -m agentwatch.server.<module> <fd> <db>`: a plain child process, not
multiprocessing (whose spawn would import the server's entry point, and all
of FastAPI, into the child). It shares one socket pair with the server;
messages are length-prefixed bytes. The child's end closes when the server
goes, even killed outright, and the child then exits: nothing outlives the
server. The standard library only, so that a child starts with nothing but
what its own work imports.
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys

_LEN = struct.Struct("!I")


def spawn(module: str, db: str) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start `python -m <module> <fd> <db>`; returns it and the server's end."""
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno()), db],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def child_socket(argv: list[str]) -> tuple[socket.socket, str]:
    """In the child: its end of the socket and the database, from its arguments.

    The server decides when its helpers go (it closes the socket). A Ctrl+C
    in a terminal reaches the whole process group, so the child ignores
    SIGINT; and it may have been started while `agentwatch serve` held
    SIGINT and SIGTERM blocked (server/serve.py), a mask a child inherits,
    so it unblocks them: SIGTERM still ends it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    return socket.socket(fileno=int(argv[0])), argv[1]


def send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_LEN.pack(len(payload)) + payload)


def recv(sock: socket.socket) -> bytes | None:
    """One message, or None once the other side has closed."""
    head = _recv_exact(sock, _LEN.size)
    if head is None:
        return None
    return _recv_exact(sock, _LEN.unpack(head)[0])


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
        except ConnectionResetError:  # closed with our message unread: gone too
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def end(proc: subprocess.Popen[bytes], sock: socket.socket, wait: float = 5.0) -> None:
    """Close the server's end (the child sees it and exits), then reap it."""
    sock.close()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
