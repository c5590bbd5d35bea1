"""The current @track run, carried in a contextvar.

A contextvar (not a thread-local) follows the code across ``await`` and into
asyncio tasks created inside a run, because each task starts with a copy of
the context that created it. Threads started with plain ``threading.Thread``
do not inherit it; use ``contextvars.copy_context().run`` for those.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Run:
    """One active @track run: what calls made inside it inherit."""

    id: str
    trace_id: str
    parent_id: str | None
    task: str
    agent: str


current_run: ContextVar[Run | None] = ContextVar("agentwatch_current_run", default=None)


@dataclass(frozen=True, slots=True)
class FrameworkRun(Run):
    """A run a framework's hooks opened (integrations/_runs.py), not a ``@track``.

    A framework may report a run's end from another context than its start
    (LangChain's async callbacks end in a shielded task), so the context the
    run was made current in may still hold it after it ended: ``live_run``
    skips such an ended run, back to the run that was current before it.
    """

    previous: Run | None = None
    ended: list[bool] = field(default_factory=lambda: [False])


def live_run() -> Run | None:
    """The innermost active run in this context, or None (ended framework runs skipped)."""
    run = current_run.get()
    while isinstance(run, FrameworkRun) and run.ended[0]:
        run = run.previous
    return run


def get_run() -> Run | None:
    """The innermost active run in this context, or None."""
    return live_run()
