"""The never-break guard: telemetry errors are logged once and swallowed.

Every piece of SDK code that runs on the host application's behalf (patched
provider calls, stream wrappers, the decorator, the sender thread) reports its
own failures through :func:`internal_error`. In production that logs the error
once per place, so a bug cannot flood the host's logs nor break its call. With
``AGENTWATCH_STRICT=1`` (set by our test suite) the error is re-raised instead,
so a bug in telemetry code fails a test rather than hiding.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("agentwatch")

_seen: set[str] = set()
_seen_lock = threading.Lock()


def strict() -> bool:
    """True when internal errors must be raised (read each time: tests flip it)."""
    return os.environ.get("AGENTWATCH_STRICT", "") not in ("", "0", "false", "False")


def log_once(key: str, level: int, msg: str, *args: object, exc_info: bool = False) -> bool:
    """Log `msg` the first time `key` is seen in this process; return whether it logged."""
    with _seen_lock:
        if key in _seen:
            return False
        _seen.add(key)
    log.log(level, msg, *args, exc_info=exc_info)
    return True


def internal_error(where: str, exc: BaseException | None = None) -> None:
    """Report a bug in telemetry code: log once per `where`, or raise under STRICT."""
    if strict():
        if exc is not None:
            raise exc
        raise RuntimeError(f"agentwatch internal error in {where}")
    log_once(
        "internal:" + where,
        logging.WARNING,
        "agentwatch: internal error in %s (telemetry skipped, your code is unaffected): %r",
        where,
        exc,
        exc_info=exc is not None,
    )


def reset_log_once() -> None:
    """Forget which messages were logged (tests use it to see a warning again)."""
    with _seen_lock:
        _seen.clear()
