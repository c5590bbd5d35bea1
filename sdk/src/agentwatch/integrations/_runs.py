"""Task runs opened and closed by a framework's own hooks, not by ``@track``.

A framework that reports when one of its runs starts and ends (the OpenAI
Agents SDK's trace processor, LangChain's callbacks) gets the same grouping a
``@track`` function gives: its LLM calls nest under one ``kind="task"`` run.
The run is made current in the context the hook is called from, which is the
context the framework then makes its model calls in; it is ended, and the
previous run restored, when the framework reports the end. Inside a ``@track``
run, or inside another framework run, nothing is opened: the calls already
have a run.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from agentwatch.integrations._patch import active_client
from agentwatch.sdk.context import FrameworkRun, Run, current_run, live_run
from agentwatch.sdk.safety import internal_error


class FrameworkRuns:
    """The framework runs open now, by the framework's own run id."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self._lock = threading.Lock()
        # framework run id -> (run, client, wall start, perf start)
        self._open: dict[Any, tuple[FrameworkRun, Any, float, float]] = {}

    def start(self, key: Any, name: str | None) -> None:
        try:
            previous = current_run.get()
            if live_run() is not None:
                return  # inside @track or another run: the calls already have one
            client: Any = active_client()  # the Client: it opens and ends runs
            if client is None:
                return
            base: Run = client._begin_run(name or None, None, _Named(name or self.framework))
            run = FrameworkRun(
                id=base.id,
                trace_id=base.trace_id,
                parent_id=None,
                task=base.task,
                agent=base.agent,
                previous=previous,
            )
            with self._lock:
                self._open[key] = (run, client, time.time(), time.perf_counter())
            current_run.set(run)
        except Exception as exc:
            internal_error(f"{self.framework}.run.start", exc)

    def end(self, key: Any, error: BaseException | str | None = None) -> None:
        with self._lock:
            entry = self._open.pop(key, None)
        if entry is None:
            return
        run, client, wall, t0 = entry
        try:
            run.ended[0] = True
            if current_run.get() is run:
                current_run.set(run.previous)
            exc = error if isinstance(error, BaseException) else None
            if isinstance(error, str):
                exc = RuntimeError(error)
            client._end_run(run, _Named(self.framework), wall, t0, exc)
        except Exception as e:
            internal_error(f"{self.framework}.run.end", e)

    def __len__(self) -> int:
        return len(self._open)


class _Named:
    """What ``_begin_run`` / ``_end_run`` read from a function: its name."""

    def __init__(self, name: str) -> None:
        self.__name__ = name
        self.__qualname__ = name
