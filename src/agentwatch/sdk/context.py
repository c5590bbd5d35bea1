"""The current @track run, carried in a contextvar.

A contextvar (not a thread-local) follows the code across ``await`` and into
asyncio tasks created inside a run, because each task starts with a copy of
the context that created it. Threads started with plain ``threading.Thread``
do not inherit it; use ``contextvars.copy_context().run`` for those.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Run:
    """One active @track run: what calls made inside it inherit."""

    id: str
    trace_id: str
    parent_id: str | None
    task: str
    agent: str


current_run: ContextVar[Run | None] = ContextVar("agentwatch_current_run", default=None)


def get_run() -> Run | None:
    """The innermost active run in this context, or None."""
    return current_run.get()
